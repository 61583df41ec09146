"""Job handles: read a stored job's state, progress and result; wait for it; cancel it."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import os
import socket
import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from offload.errors import JobCancelled, JobFailed, JobNotFinished, JobNotFound, WaitTimeout
from offload.serialization import loads
from offload.store.rules import derived_state, run_at_of
from offload.types import ErrorInfo, JobEvent, JobMessage, JobRow, JobState, NewJob, Progress

if TYPE_CHECKING:
    from offload.app import Offload

R = TypeVar("R")

__all__ = ["Job", "JobState", "Progress"]


class Job(Generic[R]):
    """A handle on one stored job, holding the snapshot it last read.

    >>> job = resize.enqueue(42, width=800)
    >>> job.id                      # a UUIDv7, known before the enqueue committed
    >>> job.refresh().state         # JobState.RUNNING
    >>> job.wait(timeout=10).result()
    """

    __slots__ = ("_deduplicated", "_id", "_pending", "_rec", "app")

    def __init__(
        self, app: Offload, record: JobRow | None, *, job_id: str = "",
        pending: tuple[NewJob, float] | None = None, deduplicated: bool = False,
    ) -> None:  # fmt: skip
        self.app = app
        self._deduplicated = deduplicated
        self._rec = record
        self._id = record.id if record is not None else job_id
        # A freshly enqueued job builds its snapshot only if someone reads it: bulk
        # enqueues return thousands of handles whose fields nobody looks at.
        self._pending = pending

    @property
    def _record(self) -> JobRow:
        if self._rec is None:
            assert self._pending is not None
            self._rec = snapshot(*self._pending)
            self._pending = None
        return self._rec

    # -- the snapshot ------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._id

    @property
    def deduplicated(self) -> bool:
        """True when the enqueue that returned this handle stored nothing: the task's
        ``unique_key`` was held (by a waiting or running job, or within its
        ``unique_for`` window) and this is the job that holds it (its arguments may differ
        from the ones just passed), or a waiting job took this call's arguments
        (``debounce``)."""
        return self._deduplicated

    @property
    def record(self) -> JobRow:
        """The raw stored row of the last snapshot."""
        return self._record

    @property
    def state(self) -> JobState:
        return self._record.state

    @property
    def task_name(self) -> str:
        return self._record.task

    @property
    def queue(self) -> str:
        return self._record.queue

    @property
    def attempts(self) -> int:
        """How many times the job has been started."""
        return self._record.attempt

    @property
    def progress(self) -> Progress:
        """``current``, ``total``, ``percent`` and ``message`` as last reported."""
        return self._record.progress

    @property
    def args(self) -> list[Any]:
        return cast(list[Any], loads(self._record.args))

    @property
    def kwargs(self) -> dict[str, Any]:
        return cast(dict[str, Any], loads(self._record.kwargs))

    @property
    def saved(self) -> dict[str, Any]:
        """The values the job stored with ``ctx.save(key, value)``."""
        return cast(dict[str, Any], loads(self._record.saved))

    @property
    def error(self) -> dict[str, Any] | None:
        """``{"type", "message", "traceback"}`` of the last error, if any."""
        info = self.error_info
        return dict(info.to_dict()) if info is not None else None

    @property
    def error_info(self) -> ErrorInfo | None:
        """The last error, if any, as an :class:`~offload.types.ErrorInfo`."""
        return ErrorInfo.from_json(self._record.error)

    @property
    def created_at(self) -> dt.datetime:
        return _aware(self._record.created_at)

    @property
    def run_at(self) -> dt.datetime:
        return _aware(self._record.run_at)

    @property
    def started_at(self) -> dt.datetime | None:
        return _aware(self._record.started_at) if self._record.started_at else None

    @property
    def finished_at(self) -> dt.datetime | None:
        return _aware(self._record.finished_at) if self._record.finished_at else None

    @property
    def finished(self) -> bool:
        return self._record.state.finished

    # -- reading the store ---------------------------------------------------------------
    def refresh(self) -> Job[R]:
        """Read the job again from the store; returns self."""
        record = self.app.store.job_get(self.id)
        if record is None:
            raise JobNotFound(f"job {self.id} no longer exists (deleted or pruned)")
        self._rec = record
        return self

    def events(self) -> list[JobEvent]:
        """The job's history: starts, retries, crashes, outcomes."""
        return self.app.store.job_events(self.id)

    def messages(self) -> list[JobMessage]:
        """The lines the job logged with ``ctx.message(...)``."""
        return self.app.store.job_messages(self.id)

    def wait(self, timeout: float | None = None, *, poll: float = 0.2) -> Job[R]:
        """Block until the job is finished (any terminal state); returns self.

        Raises WaitTimeout (also a TimeoutError) if ``timeout`` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        sleep = 0.002
        while not self.refresh().finished:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"job {self.id} still {self.state.value} after waiting {timeout} s"
                )
            remaining = poll if deadline is None else max(0.0, deadline - time.monotonic())
            time.sleep(min(sleep, poll, remaining))
            sleep *= 2
        return self

    # -- the same, for async code (the store is called in a thread) --------------------
    async def arefresh(self) -> Job[R]:
        """:meth:`refresh` without blocking the event loop."""
        return await asyncio.to_thread(self.refresh)

    async def await_finished(self, timeout: float | None = None, *, poll: float = 0.2) -> Job[R]:
        """:meth:`wait` without blocking the event loop; returns self."""
        deadline = None if timeout is None else time.monotonic() + timeout
        sleep = 0.002
        while not (await self.arefresh()).finished:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"job {self.id} still {self.state.value} after waiting {timeout} s"
                )
            remaining = poll if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.sleep(min(sleep, poll, remaining))
            sleep *= 2
        return self

    async def await_result(self, timeout: float | None = None) -> R:
        """Wait (without blocking the event loop) until the job is finished, then return
        :meth:`result`: ``await job.await_result(timeout=30)``."""
        await self.await_finished(timeout)
        return self.result()

    def result(self) -> R:
        """The task's return value.

        Raises JobFailed (with the worker's error type, message and traceback text) for a
        failed or quarantined job, JobCancelled for a cancelled one, JobNotFinished while
        it is still scheduled, queued or running.
        """
        if not self.finished:
            self.refresh()
        state = self.state
        if state is JobState.SUCCEEDED:
            return cast(R, loads(self._record.result) if self._record.result else None)
        if state in (JobState.FAILED, JobState.QUARANTINED):
            raise JobFailed(self.id, self.error_info)
        if state is JobState.CANCELLED:
            raise JobCancelled(f"job {self.id} was cancelled")
        raise JobNotFinished(f"job {self.id} is {state.value}; it has no result yet")

    def status_token(self, expires_in: float | dt.timedelta | None = None) -> str:
        """A token for this job's public status page, ``GET /status/{token}`` of
        :func:`offload.web.create_app`: signed with the ``secret`` setting, good
        for this job only, for ``expires_in`` seconds if given. Raises ConfigError when
        no secret is set. Builds the token without touching the store."""
        from offload.web.tokens import sign  # standard library only: loads no web code

        return sign(self.id, self.app.settings.secret, expires_in)

    def cancel(self, *, by: str | None = None) -> JobState:
        """Cancel the job: a waiting job is cancelled at once; a running one is asked to
        stop (``ctx.cancel_requested``), and its worker stops it after ``cancel_grace``
        seconds if it has not stopped by then. Either way it ends ``cancelled`` and is
        not retried. ``by`` (default: this user, host and process) is recorded in the
        job's history. Returns the state afterwards."""
        states = self.app.store.job_cancel([self.id], by=by or caller())
        if self.id not in states:
            raise JobNotFound(f"no job with id {self.id!r}")
        self.refresh()
        return states[self.id]

    def __repr__(self) -> str:
        return f"<Job {self.id} {self._record.task} {self._record.state.value}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


def caller() -> str:
    """Who this process is, for the history of what it does to jobs: ``user@host (pid N)``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


def snapshot(new: NewJob, now: float) -> JobRow:
    """The record a just-inserted job has, built without reading it back."""
    run_at = run_at_of(new, now)
    return JobRow(
        id=new.id, task=new.task, queue=new.queue, priority=new.priority,
        state=derived_state(JobState.QUEUED, run_at, now), args=new.args, kwargs=new.kwargs,
        attempt=0, max_attempts=new.max_attempts, errors=0, crashes=0, created_at=now,
        run_at=run_at, started_at=None, finished_at=None, leased_until=None, worker_id=None,
        timeout=new.timeout, options=new.options,
        unique_key=None if new.debounce is not None else new.unique_key, progress=Progress(),
        result=None, error=None, saved="{}", cancel_requested=False, limit_key=new.limit_key,
        limit_max=new.limit_max,
    )  # fmt: skip


def _aware(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)
