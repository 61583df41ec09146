"""The public API on the embedded store, run in-process (no worker)."""

from __future__ import annotations

import datetime as dt
import math

import pytest

import offload
from offload import Offload
from offload.errors import ConfigError, JobFailed, JobNotFound, PayloadTooLarge, SerializationError
from offload.testing import run_pending


def test_building_the_app_does_no_io(tmp_path):
    Offload(f"sqlite:///{tmp_path / 'never.db'}")
    assert list(tmp_path.iterdir()) == []


def test_enqueue_commits_before_returning_and_worker_runs_it(sqlite_app):
    @sqlite_app.task
    def add(a: int, b: int) -> int:
        return a + b

    job = add.enqueue(2, 3)
    assert job.state is offload.JobState.QUEUED
    other = Offload(sqlite_app.settings.url)  # another process would see it: new connection
    assert other.get_job(job.id).state is offload.JobState.QUEUED
    assert run_pending(sqlite_app) == 1
    assert job.refresh().state is offload.JobState.SUCCEEDED
    assert job.result() == 5
    assert job.attempts == 1


def test_calling_a_task_runs_it_inline(sqlite_app):
    @sqlite_app.task
    def double(x: int) -> int:
        return x * 2

    assert double(4) == 8


@pytest.mark.parametrize(
    ("args", "kwargs", "path"),
    [
        (({1, 2},), {}, "args[0]"),
        ((b"x",), {}, "args[0]"),
        ((1, {"when": dt.datetime.now(dt.UTC)}), {}, "args[1]['when']"),
        ((math.nan,), {}, "args[0]"),
        ((), {"d": {1: "a"}}, "kwargs['d'][1]"),
        ((), {"t": [(1, 2)]}, "kwargs['t'][0]"),
    ],
)
def test_non_json_arguments_are_refused_with_their_path(sqlite_app, args, kwargs, path):
    @sqlite_app.task
    def noop(*a: object, **k: object) -> None: ...

    with pytest.raises(SerializationError) as info:
        noop.enqueue(*args, **kwargs)
    assert info.value.path == path
    assert path in str(info.value)
    assert sqlite_app.store.job_counts() == {}


def test_recursive_list_is_refused(sqlite_app):
    @sqlite_app.task
    def noop(x: object) -> None: ...

    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="contains itself"):
        noop.enqueue(loop)


def test_payload_over_the_limit_names_size_and_limit(sqlite_url):
    app = Offload(sqlite_url, max_payload_bytes=1000)

    @app.task
    def big(s: str) -> None: ...

    with pytest.raises(PayloadTooLarge, match=r"over the limit of 1000 bytes"):
        big.enqueue("x" * 2000)


def test_enqueue_many_is_one_transaction_all_or_none(sqlite_app):
    @sqlite_app.task
    def f(x: object = None) -> None: ...

    jobs = f.enqueue_many([(1,), (2,), {"x": 3}])
    assert len({j.id for j in jobs}) == 3
    with pytest.raises(SerializationError, match=r"items\[1\]"):
        f.enqueue_many([(1,), ({1},)])
    assert sum(sqlite_app.store.job_counts().values()) == 3


def test_unknown_id_raises_job_not_found(sqlite_app):
    with pytest.raises(JobNotFound):
        sqlite_app.get_job("01900000-0000-7000-8000-000000000000")


def test_failure_retries_then_fails_with_traceback(sqlite_app):
    @sqlite_app.task(retries=1, backoff=[0])
    def boom() -> None:
        raise ValueError("no good")

    job = boom.enqueue()
    run_pending(sqlite_app)
    run_pending(sqlite_app)
    with pytest.raises(JobFailed) as info:
        job.result()
    assert info.value.error_type == "ValueError"
    assert "no good" in info.value.error_message
    assert "raise ValueError" in info.value.traceback
    assert job.refresh().attempts == 2
    kinds = [e.kind for e in job.events()]
    assert kinds == ["started", "retry", "started", "failed"]


def test_options_are_validated_with_named_messages(sqlite_app):
    with pytest.raises(ConfigError, match="retries"):
        sqlite_app.task(retries=-1)(lambda: None)
    with pytest.raises(ConfigError, match="queue"):
        sqlite_app.task(queue="Bad Queue")(lambda: None)
    with pytest.raises(ConfigError, match="timeout"):
        sqlite_app.task(timeout=0)(lambda: None)


def test_context_progress_messages_and_saved_data(sqlite_app):
    @sqlite_app.task(context=True)
    def work(ctx: offload.JobContext, n: int) -> str:
        for i in range(n):
            ctx.progress(i + 1, total=n)
        ctx.message("done counting")
        ctx.save("rows", n)
        return "ok"

    job = work.enqueue(10_000)
    run_pending(sqlite_app)
    job.refresh()
    assert job.progress.current == 10_000
    assert job.progress.percent == 100.0
    assert job.saved == {"rows": 10_000}
    assert [m.text for m in job.messages()] == ["done counting"]


def test_async_tasks_run(sqlite_app):
    @sqlite_app.task
    async def fetch(x: int) -> int:
        return x + 1

    job = fetch.enqueue(1)
    run_pending(sqlite_app)
    assert job.result() == 2


def test_delay_makes_a_scheduled_job(sqlite_app):
    @sqlite_app.task
    def later() -> None: ...

    job = later.using(delay=60).enqueue()
    assert job.state is offload.JobState.SCHEDULED
    assert job.refresh().state is offload.JobState.SCHEDULED
    assert run_pending(sqlite_app) == 0


def test_cancel_a_queued_job(sqlite_app):
    @sqlite_app.task
    def f() -> None: ...

    job = f.enqueue()
    assert job.cancel() is offload.JobState.CANCELLED
    assert run_pending(sqlite_app) == 0


def test_inline_mode_runs_at_enqueue(sqlite_url):
    app = Offload(sqlite_url, inline=True)

    @app.task
    def f(x: int) -> int:
        return x * 3

    assert f.enqueue(3).result() == 9


def test_unique_key_returns_the_active_job_even_within_one_batch(sqlite_app):
    @sqlite_app.task
    def f(x: int) -> None: ...

    first = f.using(unique_key="k").enqueue(1)
    again = f.using(unique_key="k").enqueue(2)
    batch = f.using(unique_key="k2").enqueue_many([(1,), (2,)])
    assert again.id == first.id
    assert batch[0].id == batch[1].id
    assert sum(sqlite_app.store.job_counts().values()) == 2


def test_hostname_setting_is_validated():
    from offload import Settings

    assert Settings(hostname="web-1").hostname == "web-1"
    with pytest.raises(ConfigError, match="hostname"):
        Settings(hostname="bad host")


def test_the_last_message_is_the_progress_message_until_a_new_one(sqlite_app):
    @sqlite_app.task(context=True)
    def export(ctx: offload.JobContext) -> None:
        ctx.progress(1, total=4, message="page 1 of 4")
        ctx.progress(2)  # keeps the message, as it keeps the total
        ctx.message("export written")
        ctx.progress(3)

    job = export.enqueue()
    run_pending(sqlite_app)
    job.refresh()
    assert (job.progress.current, job.progress.total) == (3, 4)
    assert job.progress.message == "export written"
    assert [m.text for m in job.messages()] == ["export written"]
