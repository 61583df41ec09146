"""Task options: declared once (TaskOptionArgs), validated by TaskOptions, changed by using()."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from offload import ConfigError, Offload
from offload.tasks import CALL_OPTIONS, TASK_OPTIONS, CallOptions, TaskOptions


@pytest.fixture
def app(tmp_path: object) -> Offload:
    return Offload(f"sqlite:///{tmp_path}/jobs.db")


def test_task_options_are_declared_once() -> None:
    fields = {f.name for f in dataclasses.fields(TaskOptions)} - {"name", "context"}
    assert fields == TASK_OPTIONS
    assert {f.name for f in dataclasses.fields(CallOptions)} == CALL_OPTIONS


def test_decorator_options_reach_the_task(app: Offload) -> None:
    @app.task(queue="mail", priority=5, retries=1, backoff=[1, 2], timeout=9, memory_limit=2**21)
    def send(to: str) -> None: ...

    o = send.options
    assert (o.queue, o.priority, o.retries, o.timeout, o.memory_limit) == ("mail", 5, 1, 9, 2**21)
    assert o.backoff == (1.0, 2.0)
    assert o.encoded == '{"backoff":[1.0,2.0],"memory_limit":2097152}'


def test_unknown_decorator_option_is_refused(app: Offload) -> None:
    with pytest.raises(ConfigError, match=r"unknown task option\(s\): retry"):
        app.task(retry=3)  # type: ignore[call-overload]


def test_using_changes_task_and_call_options(app: Offload) -> None:
    @app.task(queue="mail")
    def send(to: str) -> None: ...

    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    changed = send.using(queue="urgent", retries=0, run_at=when, unique_key="k")
    assert changed.options.queue == "urgent" and changed.options.retries == 0
    assert changed.call.run_at == when.timestamp() and changed.options.unique_key == "k"
    assert send.options.queue == "mail" and send.call.run_at is None  # the original is kept
    assert send.using(delay=dt.timedelta(minutes=2)).call.delay == 120.0
    assert send.using(backoff=[3]).options.backoff == (3.0,)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"queue": "Bad Queue"}, "expected queue to match"),
        ({"retries": -1}, "expected retries to be an int between 0 and 10000"),
        ({"timeout": 0}, "expected timeout to be positive seconds or None"),
        ({"backoff": []}, "expected backoff to be seconds or a non-empty list of seconds"),
        ({"delay": -1}, "expected delay to be non-negative seconds or a timedelta"),
        ({"run_at": dt.datetime(2030, 1, 1)}, "expected run_at to be an aware datetime"),
        ({"unique_key": ""}, "expected unique_key to be a non-empty str"),
        ({"queues": "a"}, r"unknown option\(s\) for using\(\): queues"),
    ],
)
def test_using_validates(app: Offload, changes: dict[str, object], message: str) -> None:
    @app.task
    def send(to: str) -> None: ...

    with pytest.raises(ConfigError, match=message):
        send.using(**changes)  # type: ignore[arg-type]
