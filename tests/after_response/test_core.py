"""``task.after_response`` and the pool, in this process, on a real store: what a request
hands over, what the pool runs, what it leaves to the workers, and what it does when the
store refuses a job."""

from __future__ import annotations

import io
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from offload import JobNotFound, JobState, Offload, StoreError, current_job, logs
from offload import after_response as ar
from offload.testing import wait_for


class Tasks:
    """An app on ``url`` with two tasks whose runs this test can see and hold."""

    def __init__(self, url: str, **settings: Any) -> None:
        self.app = Offload(url, lease=5.0, heartbeat=1.0, **settings)
        self.app.migrate()
        self.runs: list[tuple[str, str, int]] = []  # (job id, tag, thread ident)
        self.release = threading.Event()

        @self.app.task(name="note")
        def note(tag: str) -> str:
            ctx = current_job()
            assert ctx is not None
            self.runs.append((ctx.id, tag, threading.get_ident()))
            return tag

        @self.app.task(name="held")
        def held(tag: str) -> str:
            assert self.release.wait(20), "the test never released the job"
            return note(tag)

        self.note, self.held = note, held

    def pool(self) -> ar.AfterResponsePool:
        return ar.pool_for(self.app)

    def idle(self) -> bool:
        return self.pool().pending == 0

    def close(self) -> None:
        self.release.set()
        ar.shutdown(self.app, grace=5)
        self.app.close()


@pytest.fixture
def tasks(store_url: str) -> Iterator[Tasks]:
    t = Tasks(store_url)
    yield t
    t.close()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.configure(stream=stream)
    yield stream
    logs.configure()


def test_outside_a_request_it_is_an_enqueue(tasks: Tasks) -> None:
    assert not ar.in_request()
    job = tasks.note.after_response("outside")
    assert job.refresh().state is JobState.QUEUED
    assert tasks.app not in ar._pools  # nothing was handed to a pool


def test_inside_a_request_the_job_is_stored_at_once_and_runs_after_hand_over(
    tasks: Tasks,
) -> None:
    with ar.RequestJobs() as jobs:
        assert ar.in_request()
        job = tasks.note.after_response("after")
        assert job.refresh().state is JobState.QUEUED  # stored before the response
    assert not ar.in_request() and len(jobs) == 1 and tasks.runs == []

    jobs.hand_over()
    assert job.wait(timeout=10).state is JobState.SUCCEEDED
    assert [(run[0], run[1]) for run in tasks.runs] == [(job.id, "after")]
    assert tasks.runs[0][2] != threading.get_ident()  # on a pool thread
    assert job.record.worker_id == tasks.pool().worker_id


def test_a_job_a_worker_claimed_first_does_not_run_again(tasks: Tasks) -> None:
    with ar.RequestJobs() as jobs:
        job = tasks.note.after_response("raced")
    claimed = tasks.app.store.job_claim(
        worker_id="other", queues=["default"], tasks=["note"], limit=1, lease=30
    )
    assert [c.id for c in claimed] == [job.id]

    jobs.hand_over()
    wait_for(tasks.idle, timeout=10, what="the pool to finish")
    assert tasks.runs == []
    assert job.refresh().state is JobState.RUNNING and job.record.worker_id == "other"
    assert job.attempts == 1


def test_a_full_pool_leaves_jobs_queued_for_the_workers(
    store_url: str, log_lines: io.StringIO
) -> None:
    t = Tasks(store_url, after_response_threads=1, after_response_backlog=1)
    try:
        with ar.RequestJobs() as jobs:
            running, waiting, left = (t.held.after_response(str(i)) for i in range(3))
        jobs.hand_over()
        wait_for(lambda: running.refresh().state is JobState.RUNNING, timeout=10)
        assert waiting.refresh().state is JobState.QUEUED
        assert left.refresh().state is JobState.QUEUED
        assert f"event=after_response.left_queued task=held job={left.id}" in log_lines.getvalue()

        t.release.set()
        for job in (running, waiting):
            assert job.wait(timeout=10).state is JobState.SUCCEEDED
        assert left.refresh().state is JobState.QUEUED  # a worker's, as if enqueued
        assert t.pool().ran == 2 and t.pool().left == 1
    finally:
        t.close()


def test_delayed_and_inline_jobs_are_not_handed_over(store_url: str, tasks: Tasks) -> None:
    with ar.RequestJobs() as jobs:
        later = tasks.note.using(delay=60).after_response("later")
    assert len(jobs) == 0 and later.refresh().state is JobState.SCHEDULED

    inline = Tasks(store_url, inline=True)
    try:
        with ar.RequestJobs() as jobs:
            done = inline.note.after_response("inline")
        assert len(jobs) == 0 and done.state is JobState.SUCCEEDED
    finally:
        inline.close()


def test_bad_arguments_still_raise_in_a_request(tasks: Tasks) -> None:
    with ar.RequestJobs(), pytest.raises(TypeError):
        tasks.note.after_response("a", "b")  # type: ignore[call-arg]


def test_shutdown_requeues_running_jobs_and_leaves_waiting_ones_queued(
    store_url: str,
) -> None:
    t = Tasks(store_url, after_response_threads=1)
    try:
        with ar.RequestJobs() as jobs:
            running, waiting = (t.held.after_response(str(i)) for i in range(2))
        jobs.hand_over()
        wait_for(lambda: running.refresh().state is JobState.RUNNING, timeout=10)

        pool = t.pool()
        assert ar.shutdown(t.app, grace=0.2) == [running.id]
        for job in (running, waiting):
            record = job.refresh().record
            assert record.state is JobState.QUEUED and record.errors == record.crashes == 0
        assert [e.kind for e in running.events()][-1] == "requeued"
        assert pool.left == 1  # the waiting job was never started

        t.release.set()  # the thread's late outcome is refused: the attempt was given back
        wait_for(lambda: pool.pending == 0, timeout=10, what="the cut-short run to end")
        assert running.refresh().state is JobState.QUEUED
        assert t.runs == [] or [r[1] for r in t.runs] == ["0"]
    finally:
        t.close()


def test_store_refusal_keeps_the_request_alive_and_recovers(
    sqlite_url: str, log_lines: io.StringIO
) -> None:
    # A real outage: another process holds the SQLite write lock past the busy timeout.
    t = Tasks(sqlite_url, busy_timeout=0.2, after_response_fallback="memory")
    blocker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with ar.RequestJobs() as jobs:
            job = t.note.after_response("while locked")
        assert isinstance(job, ar.NotStoredJob)
        assert isinstance(job.store_error, StoreError)
        with pytest.raises(JobNotFound, match="never stored"):
            job.refresh()
        line = log_lines.getvalue()
        assert "level=error event=after_response.not_stored task=note" in line
        assert f"job={job.id} args_bytes=18 " in line and "StoreUnavailable" in line

        jobs.hand_over()  # fallback "memory": it runs here, without a record
        wait_for(lambda: t.runs, timeout=10, what="the in-memory run")
        assert [(run[0], run[1]) for run in t.runs] == [(job.id, "while locked")]
        assert "event=after_response.memory_run task=note" in log_lines.getvalue()

        blocker.execute("ROLLBACK")  # the store is back: the next call just works
        with ar.RequestJobs() as jobs:
            stored = t.note.after_response("after")
        jobs.hand_over()
        assert stored.wait(timeout=10).state is JobState.SUCCEEDED
    finally:
        blocker.close()
        t.close()


def test_settings_are_validated_and_read_from_the_environment() -> None:
    from offload import ConfigError, Settings

    settings = Settings.from_env(
        {
            "OFFLOAD_AFTER_RESPONSE_THREADS": "4",
            "OFFLOAD_AFTER_RESPONSE_BACKLOG": "0",
            "OFFLOAD_AFTER_RESPONSE_GRACE": "1.5",
            "OFFLOAD_AFTER_RESPONSE_FALLBACK": "memory",
        }
    )
    assert settings.after_response_threads == 4 and settings.after_response_backlog == 0
    assert settings.after_response_grace == 1.5
    assert settings.after_response_fallback == "memory"
    with pytest.raises(ConfigError, match="after_response_threads"):
        Settings(after_response_threads=-1)
    with pytest.raises(ConfigError, match="'log' or 'memory'"):
        Settings(after_response_fallback="disk")
