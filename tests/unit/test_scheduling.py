"""Periodic schedules without a worker: the decorator's checks, stepping cron expressions
(across daylight-saving changes) and intervals, and which fires a scheduler fires after
downtime. Every time here is fixed: nothing waits."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from offload import Offload
from offload.errors import ConfigError
from offload.scheduling import Cron, Every
from offload.scheduling.plan import LATE_GRACE, late_from, missed_any, plan

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def ts(*parts: int, tz: dt.tzinfo = UTC, fold: int = 0) -> int:
    return int(dt.datetime(*parts, tzinfo=tz, fold=fold).timestamp())  # type: ignore[misc]


def local(t: int) -> str:
    return dt.datetime.fromtimestamp(t, BERLIN).strftime("%Y-%m-%d %H:%M %Z")


def steps(spec: Cron | Every, start: int, n: int) -> list[int]:
    out, t = [], start
    for _ in range(n):
        nxt = spec.next_after(t)
        assert nxt is not None
        out.append(nxt)
        t = nxt
    return out


@pytest.fixture
def app(tmp_path: object) -> Offload:
    return Offload(f"sqlite:///{tmp_path}/jobs.db")


# -- the decorator -----------------------------------------------------------------------------


def test_periodic_registers_a_schedule_above_a_task(app: Offload) -> None:
    @app.periodic("*/5 * * * *", tz="Europe/Berlin", args=(3,), kwargs={"unit": "m"})
    @app.task(name="report")
    def report(n: int, unit: str = "s") -> str:
        return f"{n}{unit}"

    @app.periodic(every=30, name="ping-eu", args=("eu",), catch_up="all", catch_up_limit=5)
    @app.periodic(every=dt.timedelta(minutes=2), name="ping-us", args=("us",))
    @app.task(name="ping")
    def ping(region: str) -> str:
        return region

    assert report(1) == "1s"  # still the task, callable inline
    assert sorted(app.schedules) == ["ping-eu", "ping-us", "report"]
    s = app.schedules["report"]
    assert (s.task.name, s.args, dict(s.kwargs), s.catch_up) == (
        "report",
        (3,),
        {"unit": "m"},
        "latest",
    )
    assert s.spec.describe() == "Every fifth minute of every hour (Europe/Berlin)"
    eu = app.schedules["ping-eu"]
    assert (eu.spec, eu.catch_up, eu.catch_up_limit) == (Every(30), "all", 5)
    assert app.schedules["ping-us"].spec == Every(120)
    job = s.new_job()
    assert (job.task, job.args, job.kwargs) == ("report", "[3]", '{"unit":"m"}')


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("*/5 * * *", r"bad cron expression '\*/5 \* \* \*'"),
        ("61 * * * *", r"bad cron expression '61 \* \* \* \*': Bad minute"),
        ("0 0 31 2 *", r"'0 0 31 2 \*'"),
        ("", "non-empty str"),
    ],
)
def test_a_bad_expression_fails_when_the_decorator_runs(
    app: Offload, cron: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        app.periodic(cron)


def test_an_unknown_zone_fails_naming_the_expression(app: Offload) -> None:
    with pytest.raises(ConfigError, match=r"cron '0 3 \* \* \*': unknown time zone 'Europe/Berln'"):
        app.periodic("0 3 * * *", tz="Europe/Berln")
    with pytest.raises(ConfigError, match="unknown time zone"):
        app.periodic("0 3 * * *", tz="../../etc/passwd")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"cron": "* * * * *", "every": 5}, "exactly one"),
        ({"every": 0}, "whole seconds from 1"),
        ({"every": 1.5}, "whole seconds"),
        ({"every": True}, "whole seconds"),
        ({"every": dt.timedelta(milliseconds=500)}, "whole seconds"),
        ({"every": 5, "tz": "Europe/Berlin"}, "tz applies to cron expressions only"),
    ],
)
def test_bad_intervals_are_refused(app: Offload, kwargs: dict[str, object], message: str) -> None:
    cron = kwargs.pop("cron", None)
    with pytest.raises(ConfigError, match=message):
        app.periodic(cron, **kwargs)  # type: ignore[arg-type]


def test_the_schedule_must_bind_and_be_registered(app: Offload) -> None:
    @app.task(name="two")
    def two(a: int, b: int) -> None: ...

    with pytest.raises(ConfigError, match=r"schedule 'two': two\(\): missing a required"):
        app.periodic(every=5, args=(1,))(two)
    with pytest.raises(ConfigError, match="is not strict JSON"):
        app.periodic(every=5, args=(1, {1, 2}))(two)
    with pytest.raises(ConfigError, match=r"stack @app\.periodic above @app\.task"):
        app.periodic(every=5)(lambda: None)  # type: ignore[type-var]
    other = Offload(app.settings.url)
    with pytest.raises(ConfigError, match="not registered in this app"):
        other.periodic(every=5, args=(1, 2))(two)
    with pytest.raises(ConfigError, match="catch_up to be one of"):
        app.periodic(every=5, args=(1, 2), catch_up="some")(two)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="catch_up_limit"):
        app.periodic(every=5, args=(1, 2), catch_up_limit=0)(two)
    app.periodic(every=5, args=(1, 2))(two)
    with pytest.raises(ConfigError, match="already registered; give this one another name"):
        app.periodic(every=7, args=(1, 2))(two)
    assert list(app.schedules) == ["two"]


# -- stepping ----------------------------------------------------------------------------------


def test_intervals_fall_on_multiples_of_their_seconds() -> None:
    every = Every(30)
    assert steps(every, 1_000_000_010, 3) == [1_000_000_020, 1_000_000_050, 1_000_000_080]
    assert every.next_after(1_000_000_020) == 1_000_000_050  # strictly after
    assert every.latest(1_000_000_020, 1_000_000_110, 100) == [
        1_000_000_050,
        1_000_000_080,
        1_000_000_110,
    ]
    assert every.latest(1_000_000_000, 1_000_086_400, 2) == [1_000_086_360, 1_000_086_390]
    assert every.latest(5, 5, 3) == []
    assert Every(1).describe() == "every second"
    assert Every(90).describe() == "every 90 seconds"
    assert Every(3600).describe() == "every hour"
    assert Every(7200).expression() == "every 7200s"


def test_cron_steps_in_its_zone() -> None:
    nine = Cron("0 9 * * MON-FRI", "Europe/Berlin")
    friday = ts(2026, 1, 9, 9, 0, tz=BERLIN)
    assert [local(t) for t in steps(nine, friday, 2)] == [
        "2026-01-12 09:00 CET",
        "2026-01-13 09:00 CET",
    ]
    assert nine.describe() == "At 09:00 on Monday through Friday (Europe/Berlin)"
    seconds = Cron("*/15 * * * * *")  # six fields: seconds first
    assert steps(seconds, 1_800_000_000, 2) == [1_800_000_015, 1_800_000_030]


def test_spring_forward_loses_no_fire_and_doubles_none() -> None:
    # 29 March 2026: Berlin's clocks go from 02:00 CET to 03:00 CEST.
    daily = Cron("30 2 * * *", "Europe/Berlin")
    fires = steps(daily, ts(2026, 3, 27, 12, 0, tz=BERLIN), 3)
    assert [local(t) for t in fires] == [
        "2026-03-28 02:30 CET",
        "2026-03-29 03:00 CEST",  # 02:30 does not exist that day: the next valid moment
        "2026-03-30 02:30 CEST",
    ]
    hourly = Cron("0 * * * *", "Europe/Berlin")
    fires = steps(hourly, ts(2026, 3, 29, 0, 30, tz=BERLIN), 3)
    assert [local(t) for t in fires] == [
        "2026-03-29 01:00 CET",
        "2026-03-29 03:00 CEST",  # one hour later in real time: nothing lost
        "2026-03-29 04:00 CEST",
    ]
    assert fires[1] - fires[0] == 3600


def test_fall_back_fires_a_daily_time_once() -> None:
    # 25 October 2026: Berlin's clocks go from 03:00 CEST back to 02:00 CET.
    daily = Cron("30 2 * * *", "Europe/Berlin")
    fires = steps(daily, ts(2026, 10, 23, 12, 0, tz=BERLIN), 3)
    assert [local(t) for t in fires] == [
        "2026-10-24 02:30 CEST",
        "2026-10-25 02:30 CEST",  # the first 02:30 only, not the repeated one
        "2026-10-26 02:30 CET",
    ]
    # Every half hour names both occurrences of the repeated hour: four real moments.
    half = Cron("*/30 * * * *", "Europe/Berlin")
    fires = steps(half, ts(2026, 10, 25, 1, 45, tz=BERLIN), 5)
    assert [local(t) for t in fires] == [
        "2026-10-25 02:00 CEST",
        "2026-10-25 02:30 CEST",
        "2026-10-25 02:00 CET",
        "2026-10-25 02:30 CET",
        "2026-10-25 03:00 CET",
    ]
    assert len(set(fires)) == 5 and fires == sorted(fires)


@pytest.mark.parametrize(
    "expr", ["30 2 * * *", "*/30 * * * *", "0 * * * *", "15 1-3 * * *", "0 0 * * SUN"]
)
def test_latest_agrees_with_stepping_forward_across_both_changes(expr: str) -> None:
    cron = Cron(expr, "Europe/Berlin")
    start, end = ts(2026, 3, 20), ts(2026, 11, 5)
    forward = []
    t = start
    while (t := cron.next_after(t)) is not None and t <= end:  # type: ignore[assignment]
        forward.append(t)
    assert cron.latest(start, end, 100_000) == forward
    assert cron.latest(start, end, 3) == forward[-3:]


# -- catch-up ----------------------------------------------------------------------------------

MIN = Every(60)
NOW = 1_800_000_030  # 30 s past a minute
LAST = NOW - 30 - 10 * 60  # ten fires missed: the last recorded fire was ten minutes ago


def test_latest_runs_the_latest_missed_fire_once() -> None:
    assert plan(MIN, LAST, NOW, policy="latest", limit=100, late_from=NOW + 1) == [NOW - 30]


def test_all_runs_every_missed_fire_up_to_the_limit() -> None:
    missed = [LAST + 60 * k for k in range(1, 11)]
    assert plan(MIN, LAST, NOW, policy="all", limit=100, late_from=NOW + 1) == missed
    assert plan(MIN, LAST, NOW, policy="all", limit=3, late_from=NOW + 1) == missed[-3:]


def test_none_runs_no_missed_fire() -> None:
    assert plan(MIN, LAST, NOW, policy="none", limit=100, late_from=NOW + 1) == []


def test_late_fires_at_a_running_scheduler_all_run_whatever_the_policy() -> None:
    every_second = Every(1)
    started = NOW - 3600
    cursor = NOW - 5  # a busy machine: five seconds behind
    first_late = late_from(NOW, started)
    assert first_late == NOW - LATE_GRACE
    for policy in ("latest", "all", "none"):
        got = plan(every_second, cursor, NOW, policy=policy, limit=1, late_from=first_late)  # type: ignore[arg-type]
        assert got == [NOW - 4, NOW - 3, NOW - 2, NOW - 1, NOW]


def test_a_long_outage_of_a_running_scheduler_follows_the_policy_for_older_fires() -> None:
    every_second = Every(1)
    cursor = NOW - 600
    first_late = late_from(NOW, NOW - 3600)
    late = list(range(NOW - LATE_GRACE, NOW + 1))
    assert plan(every_second, cursor, NOW, policy="latest", limit=9, late_from=first_late) == late
    assert plan(every_second, cursor, NOW, policy="none", limit=9, late_from=first_late) == late
    got = plan(every_second, cursor, NOW, policy="all", limit=3, late_from=first_late)
    assert got == [NOW - LATE_GRACE - 3, NOW - LATE_GRACE - 2, NOW - LATE_GRACE - 1, *late]
    assert missed_any(every_second, cursor, first_late)
    assert not missed_any(every_second, NOW - 5, first_late)


def test_what_fell_due_before_the_start_is_downtime() -> None:
    started = NOW
    assert late_from(NOW, started) == NOW + 1
    # A fire due one second after the start, seen five seconds later, is late: it runs.
    first_late = late_from(NOW + 5, started)
    got = plan(Every(1), NOW, NOW + 5, policy="none", limit=1, late_from=first_late)
    assert got == [NOW + 1, NOW + 2, NOW + 3, NOW + 4, NOW + 5]


def test_a_year_of_downtime_costs_no_stepping() -> None:
    cursor = NOW - 366 * 86400
    assert plan(Every(1), cursor, NOW, policy="latest", limit=1, late_from=NOW + 1) == [NOW]
    got = plan(Every(1), cursor, NOW, policy="all", limit=10_000, late_from=NOW + 1)
    assert len(got) == 10_000 and got[-1] == NOW
    cron = Cron("* * * * *")
    assert plan(cron, cursor, NOW, policy="latest", limit=1, late_from=NOW + 1) == [NOW - 30]


def test_catch_up_across_the_autumn_change_fires_each_moment_once() -> None:
    half = Cron("*/30 * * * *", "Europe/Berlin")
    cursor = ts(2026, 10, 25, 1, 30, tz=BERLIN)
    now = ts(2026, 10, 25, 3, 10, tz=BERLIN)
    got = plan(half, cursor, now, policy="all", limit=100, late_from=now + 1)
    assert [local(t) for t in got] == [
        "2026-10-25 02:00 CEST",
        "2026-10-25 02:30 CEST",
        "2026-10-25 02:00 CET",
        "2026-10-25 02:30 CET",
        "2026-10-25 03:00 CET",
    ]
