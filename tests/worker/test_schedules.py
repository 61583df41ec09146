"""Periodic schedules fired by real worker and drain processes: the jobs they make, what a
supervisor started after downtime catches up on (also across daylight-saving changes),
and a drain firing what is due."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from zoneinfo import ZoneInfo

import pytest

from offload import JobState
from offload.testing import wait_for
from offload.types import JobFilter
from tests.worker.conftest import Harness
from tests.worker.schedule_apps import PREFIX
from tests.worker.schedule_checks import fire_rows, fires_of, plant

APP = "tests.worker.schedule_apps:app"
BERLIN = ZoneInfo("Europe/Berlin")


def at(*parts: int, tz: dt.tzinfo = dt.UTC, fold: int = 0) -> int:
    return int(dt.datetime(*parts, tzinfo=tz, fold=fold).timestamp())  # type: ignore[misc]


def jobs_of(harness: Harness, task: str) -> list[JobState]:
    rows = harness.app.store.job_list(JobFilter(task=f"{PREFIX}.{task}", limit=10_000))
    return [r.state for r in rows]


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch) -> object:
    """``use("a,b")``: the schedules the next worker's app declares."""
    return lambda names: monkeypatch.setenv("SCHEDULE_TEST_SET", names)


def test_a_worker_fires_an_every_second_schedule(harness: Harness, use) -> None:  # type: ignore[no-untyped-def]
    use("every-second")
    started = int(time.time())
    worker = harness.start("worker", "--concurrency", "1", app=APP)

    fires = wait_for(
        lambda: len(fires_of(harness.url, "every-second")) >= 4 and fire_rows(harness.url),
        timeout=60, what="four fires",
    )  # fmt: skip
    worker.signal(15)
    assert worker.wait(timeout=60) == 0

    times = [t for s, t, _ in fires if s == "every-second"]
    assert times[0] > started  # a new schedule starts from now, not from the epoch
    assert times == list(range(times[0], times[0] + len(times)))  # one per second, no gap
    ids = [job for _, _, job in fires]
    assert len(set(ids)) == len(ids)
    for job_id in ids:
        row = harness.app.store.job_get(job_id)
        assert row is not None and row.args == '["eu"]'
    assert "event=schedule.fired schedule=every-second" in worker.log()


def test_after_downtime_the_latest_missed_fire_runs_once(harness: Harness, use) -> None:  # type: ignore[no-untyped-def]
    # Given a yearly schedule last fired on 1 January 2025 (the workers then went away).
    use("yearly")
    planted = plant(harness.app.store, "yearly", at(2025, 1, 1))

    # When a worker starts, and later another one (a restart).
    for _ in range(2):
        done = harness.run("drain", "--concurrency", "1", app=APP, timeout=90)
        assert done.returncode == 0, done.stderr

    # Then the missed fire of 1 January 2026 ran once; nothing before it, nothing twice.
    latest_missed = at(2026, 1, 1)
    assert latest_missed < time.time() < at(2027, 1, 1)
    assert fires_of(harness.url, "yearly") == [at(2025, 1, 1), latest_missed]
    assert jobs_of(harness, "dst") == [JobState.SUCCEEDED, JobState.SUCCEEDED]
    assert harness.runs_of(planted) == 1
    assert len(harness.rows("done")) == 2


def test_a_new_schedule_catches_up_on_nothing(harness: Harness, use) -> None:  # type: ignore[no-untyped-def]
    use("yearly")
    done = harness.run("drain", "--concurrency", "1", app=APP, timeout=90)
    assert done.returncode == 0, done.stderr
    assert "event=scheduler.started" in done.stderr
    assert fire_rows(harness.url) == []  # not since the epoch: from now on


def test_catch_up_none_skips_the_downtime(harness: Harness, use) -> None:  # type: ignore[no-untyped-def]
    use("every-second-none")
    last = int(time.time()) - 300
    plant(harness.app.store, "every-second-none", last, task="tick")
    started = int(time.time())

    worker = harness.start("worker", "--concurrency", "1", app=APP)
    wait_for(lambda: len(fires_of(harness.url, "every-second-none")) >= 3, timeout=60)
    worker.signal(15)
    assert worker.wait(timeout=60) == 0

    times = fires_of(harness.url, "every-second-none")
    assert times[0] == last
    assert times[1] > started  # none of the 300 missed fires
    assert times[1:] == list(range(times[1], times[1] + len(times) - 1))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_catch_up_across_daylight_saving_changes(
    request: pytest.FixtureRequest,
    backend: str,
    use,  # type: ignore[no-untyped-def]
) -> None:
    harness: Harness = request.getfixturevalue("harness" if backend == "sqlite" else "pg_harness")
    # Given the last fires before the changes of 2026 in Berlin: the autumn schedule fires
    # every half hour from 01:00 to 03:59 on 25 October (catch_up="all"); the spring one
    # at 02:30 on 29 March, a time that does not exist that day (catch_up="latest").
    use("autumn,spring")
    store = harness.app.store
    plant(store, "autumn", at(2026, 10, 25, 1, 30, tz=BERLIN))
    plant(store, "spring", at(2025, 3, 30, 3, 0, tz=BERLIN))  # 2025 skipped 02:30 as well

    # When a drain runs after them.
    done = harness.run("drain", "--concurrency", "2", app=APP, timeout=120)
    assert done.returncode == 0, done.stderr

    # Then each moment fired once: both 02:00 and 02:30 of the repeated hour (different
    # moments, both named by the expression), none lost in the skipped hour.
    def local(t: int) -> str:
        return dt.datetime.fromtimestamp(t, BERLIN).strftime("%m-%d %H:%M %Z")

    assert [local(t) for t in fires_of(harness.url, "autumn")] == [
        "10-25 01:30 CEST",  # planted
        "10-25 02:00 CEST",
        "10-25 02:30 CEST",
        "10-25 02:00 CET",
        "10-25 02:30 CET",
        "10-25 03:00 CET",
        "10-25 03:30 CET",
    ]
    assert [local(t) for t in fires_of(harness.url, "spring")] == [
        "03-30 03:00 CEST",  # planted (2025)
        "03-29 03:00 CEST",  # 2026: 02:30 was skipped; it fired at the next valid moment
    ]
    labels = [r.args for r in store.job_list(JobFilter(task=f"{PREFIX}.dst", limit=100))]
    assert sorted(labels) == sorted(['["autumn"]'] * 6 + ['["spring"]'] + ['["planted"]'] * 2)
    assert jobs_of(harness, "dst") == [JobState.SUCCEEDED] * 9
    assert len(harness.rows("done")) == 9  # each ran once


def test_no_schedules_fires_nothing(harness: Harness, use) -> None:  # type: ignore[no-untyped-def]
    use("yearly")
    plant(harness.app.store, "yearly", at(2025, 1, 1))
    done = harness.run("drain", "--no-schedules", app=APP, timeout=90)
    assert done.returncode == 0, done.stderr
    assert fires_of(harness.url, "yearly") == [at(2025, 1, 1)]  # not fired, not pruned


def test_fires_due_during_a_short_outage_all_run_late(harness: Harness, use) -> None:  # type: ignore[no-untyped-def]
    # Given a worker firing an every-second schedule.
    use("every-second")
    worker = harness.start("worker", "--concurrency", "1", busy_timeout=0.2, app=APP)
    wait_for(lambda: len(fires_of(harness.url, "every-second")) >= 2, timeout=60)

    # When the store refuses every write for about five seconds.
    blocker = sqlite3.connect(harness.url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        blocked_at = int(time.time())
        # The first store call to fail may be a fire or a lease renewal of the job
        # running: either way the worker now sees the store as down.
        wait_for(lambda: "event=store.error" in worker.log(), timeout=30, what="a failed write")
        time.sleep(5)  # the outage itself: what the test is about, not a wait for a condition
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    released = int(time.time())

    # Then the fires due meanwhile are late, not missed: each runs once, none is lost.
    wait_for(
        lambda: max(fires_of(harness.url, "every-second")) >= released + 2, timeout=90,
        what="fires after the outage",
    )  # fmt: skip
    worker.signal(15)
    assert worker.wait(timeout=60) == 0
    times = fires_of(harness.url, "every-second")
    assert times[0] < blocked_at and times[-1] >= released + 2
    assert times == list(range(times[0], times[-1] + 1))
