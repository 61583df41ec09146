"""Retention values: the settings and their variables, a task's ``retention=`` option and
what it stores with each job, and the policy a prune follows."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from offload import Offload
from offload.errors import ConfigError
from offload.retention import PruneResult, RetentionPolicy, parse_duration, task_retention
from offload.settings import Settings
from offload.tasks import TaskOptions
from offload.types import JobState

DAY = 86400.0


def test_defaults_keep_successes_a_week_and_failures_a_month() -> None:
    s = Settings()
    assert (s.retention_succeeded, s.retention_failed) == (7 * DAY, 30 * DAY)
    assert (s.retention_cancelled, s.retention_quarantined) == (7 * DAY, 30 * DAY)
    assert (s.prune_interval, s.prune_batch) == (60.0, 500)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("3600", 3600.0), ("90s", 90.0), ("30m", 1800.0), ("12h", 43200.0), ("7d", 7 * DAY),
     ("2w", 14 * DAY), ("1.5h", 5400.0), ("0", 0.0), ("forever", None), ("none", None),
     ("", None), (" 7D ", 7 * DAY)],
)  # fmt: skip
def test_variables_take_seconds_or_durations(raw: str, seconds: float | None) -> None:
    settings = Settings.from_env({"OFFLOAD_RETENTION_FAILED": raw})
    assert settings.retention_failed == seconds


@pytest.mark.parametrize("raw", ["soon", "-1", "7 days", "1e999", "nan", "inf", "200y", "999999w"])
def test_bad_variables_name_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="OFFLOAD_RETENTION_SUCCEEDED"):
        Settings.from_env({"OFFLOAD_RETENTION_SUCCEEDED": raw})


def test_settings_take_forever_and_timedeltas_and_refuse_the_rest() -> None:
    app = Offload("sqlite:///x.db", retention_succeeded="forever", retention_failed=dt.timedelta(1))
    assert (app.settings.retention_succeeded, app.settings.retention_failed) == (None, DAY)
    assert Settings(retention_cancelled=None).retention_cancelled is None
    with pytest.raises(ConfigError, match="retention_quarantined"):
        Settings(retention_quarantined=-1.0)
    with pytest.raises(ConfigError, match="prune_batch"):
        Settings(prune_batch=0)
    with pytest.raises(ConfigError, match="prune_interval"):
        Settings(prune_interval=0.0)
    assert Settings.from_env({"OFFLOAD_PRUNE_INTERVAL": "none"}).prune_interval is None


def test_a_task_retention_is_stored_with_each_job() -> None:
    every = TaskOptions(name="t", retention=3600)
    assert json.loads(every.encoded)["retention"] == dict.fromkeys(
        ("succeeded", "failed", "cancelled", "quarantined"), 3600.0
    )
    some = TaskOptions(name="t", retention={JobState.FAILED: None, "succeeded": dt.timedelta(1)})
    assert json.loads(some.encoded)["retention"] == {"succeeded": DAY, "failed": None}
    forever = json.loads(TaskOptions(name="t", retention="forever").encoded)["retention"]
    assert set(forever.values()) == {None}
    assert "retention" not in json.loads(TaskOptions(name="t").encoded)
    # replace() gives the canonical form back in: it survives being checked again.
    assert some.replace(queue="mail").retention == some.retention


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "expected retention to be seconds between 0 and"),
        ({"running": 60}, "expected the keys to be finished states"),
        ({"failed": "soon"}, "expected retention['failed'] to be seconds"),
        (float("nan"), "expected retention to be seconds"),
        (True, "expected retention to be seconds"),
    ],
)
def test_a_bad_task_retention_is_refused_at_declaration(value: object, message: str) -> None:
    app = Offload("sqlite:///x.db")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        app.task(name="t", retention=value)(lambda: None)  # type: ignore[call-overload]


def test_parse_duration_without_forever_refuses_it() -> None:
    with pytest.raises(ConfigError, match="--older-than"):
        parse_duration("forever", "--older-than", forever=False)


def test_the_policy_walks_the_default_group_then_each_stored_retention() -> None:
    policy = RetentionPolicy()
    groups = policy.buckets(JobState.SUCCEEDED, [60.0, float("inf")])
    assert groups == [(None, 7 * DAY), (60.0, 60.0)]  # "for ever" is never walked
    operator = RetentionPolicy.older_than(3600, states=["failed"])
    assert operator.buckets(JobState.FAILED, [60.0, float("inf")]) == [
        (None, 3600.0), (60.0, 3600.0), (float("inf"), 3600.0)
    ]  # fmt: skip
    assert operator.buckets(JobState.SUCCEEDED, [60.0]) == []
    assert task_retention({}) is None


def test_results_add_up_and_read_well() -> None:
    one = PruneResult({JobState.SUCCEEDED: 2}, events=4, messages=1, full=True)
    both = one.plus(PruneResult({JobState.SUCCEEDED: 1, JobState.FAILED: 1}, 2, 0))
    assert both.total == 4 and not both.full
    assert both.summary() == "4 jobs (succeeded 3, failed 1), 6 events, 1 messages"
