"""Run a task after the HTTP response, in the web process: ``task.after_response(...)``.

Inside a request, ``task.after_response(*args)`` stores the job first (a normal enqueue:
the handle comes back at once, its id known) and notes it in the request's
:class:`RequestJobs`. Once the response has been sent, the web framework's hook (see
:mod:`offload.integrations`) hands those jobs to this app's :class:`AfterResponsePool`:
a few threads (``after_response_threads``, default 2), each running one job through the
same :class:`~offload.execution.Runner` every in-process mode uses. The Runner claims the
job conditionally, so a job a worker took first never runs twice, and it renews the lease
while the job runs.

Every path that does not run a job here leaves it to the store, as if it had been
enqueued: a pool whose threads are busy and whose backlog (``after_response_backlog``
job ids waiting for a thread) is full, a process that is stopping (waiting jobs are not
started; running ones get ``after_response_grace`` seconds, then are requeued), a process
that dies (the lease expires and any worker rescues the job). A waiting job is queued in
the store all along, so a worker may take it first. Deploy a worker or a cron drain
beside a web process that uses ``after_response``: they also run its retries.

When the store refuses the job (:class:`~offload.errors.StoreFull`, ``StoreUnavailable``
or any other store error), the request still succeeds: an error line names the task and
the arguments' encoded size, and the call returns a :class:`NotStoredJob`. With the
setting ``after_response_fallback="memory"`` the task also runs after the response in
this process, without a record. The next call tries the store again.

Outside a request (no hook around the code), ``after_response`` is ``enqueue``.

>>> @app.task
... def send_receipt(order_id: int) -> None: ...
>>> job = send_receipt.after_response(42)       # in a view: runs once the response is sent
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from offload import logs
from offload.errors import JobNotFound, StoreError
from offload.execution import Runner, execute
from offload.jobs import Job
from offload.reporters import NullReporter
from offload.types import ClaimedJob, JobState, NewJob, Outcome

if TYPE_CHECKING:
    from types import TracebackType

    from offload.app import Offload
    from offload.tasks import Task

R = TypeVar("R")

__all__ = [
    "AfterResponsePool",
    "NotStoredJob",
    "RequestJobs",
    "in_request",
    "pool_for",
    "run_after_response",
    "shutdown",
]


# -- what a request asked for ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Stored:
    """A stored job to claim and run here."""

    app: Offload
    job_id: str
    queue: str
    task: str


@dataclass(frozen=True, slots=True)
class _InMemory:
    """A job the store refused, to run here without a record (fallback ``memory``)."""

    app: Offload
    job: NewJob


_Item = _Stored | _InMemory

_current: contextvars.ContextVar[RequestJobs | None] = contextvars.ContextVar(
    "offload_after_response", default=None
)


class RequestJobs:
    """The jobs one request asked to run after its response.

    A framework hook makes one per request, binds it while the request's code runs, and
    calls :meth:`hand_over` once the response is sent. A job added after that (a
    framework's own after-response callback calling ``after_response``) is handed over
    at once.

    >>> jobs = RequestJobs()
    >>> with jobs:                      # code in here sees in_request() == True
    ...     job = send_receipt.after_response(42)
    >>> jobs.hand_over()                # once the response is out
    """

    __slots__ = ("_items", "_lock", "_sent", "_token")

    def __init__(self) -> None:
        self._items: list[_Item] = []
        self._sent = False
        self._lock = threading.Lock()

    def bind(self) -> contextvars.Token[RequestJobs | None]:
        """Make this the current request's jobs in the running context."""
        return _current.set(self)

    @staticmethod
    def unbind(token: contextvars.Token[RequestJobs | None]) -> None:
        """Undo :meth:`bind`."""
        _current.reset(token)

    def __enter__(self) -> RequestJobs:
        self._token = self.bind()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unbind(self._token)

    def _add(self, item: _Item) -> None:
        with self._lock:
            if not self._sent:
                self._items.append(item)
                return
        _submit(item)

    def hand_over(self) -> None:
        """The response is sent: give the jobs to their apps' pools (at most once; cheap,
        never blocks on a job)."""
        with self._lock:
            if self._sent:
                return
            self._sent = True
            items, self._items = self._items, []
        for item in items:
            _submit(item)

    def __len__(self) -> int:
        return len(self._items)


def in_request() -> bool:
    """Whether this code runs inside a request that an after-response hook wraps."""
    return _current.get() is not None


# -- task.after_response ------------------------------------------------------------------------
class NotStoredJob(Job[R]):
    """What ``after_response`` returns when the store refused the job: its id and fields
    are those it would have had, but nothing was stored, so reading it back raises
    :class:`~offload.errors.JobNotFound`. ``store_error`` is the store's refusal."""

    __slots__ = ("store_error",)

    def __init__(self, app: Offload, job: NewJob, error: StoreError) -> None:
        super().__init__(app, None, job_id=job.id, pending=(job, time.time()))
        self.store_error = error

    def refresh(self) -> NotStoredJob[R]:
        raise self._not_found()

    def cancel(self, *, by: str | None = None) -> JobState:
        raise self._not_found()

    def _not_found(self) -> JobNotFound:
        error = self.store_error
        return JobNotFound(
            f"job {self.id} was never stored: the store refused it "
            f"({type(error).__name__}: {error})"
        )


def run_after_response(task: Task[Any, R], args: Sequence[Any], kwargs: dict[str, Any]) -> Job[R]:
    """:meth:`Task.after_response <offload.tasks.Task.after_response>`: store the job, and
    if this runs inside a request, run it here once the response is sent."""
    jobs = _current.get()
    app = task.app
    if jobs is None or app.settings.inline:
        return task.enqueue(*args, **kwargs)  # outside a request: an enqueue, errors and all
    new = task._new_job(list(args), kwargs)  # a bad argument raises here, as enqueue does
    try:
        job: Job[R] = app._enqueue([new], task.call.connection, [task])[0]
    except StoreError as exc:
        return _refused(task, new, exc, jobs)
    if app.settings.after_response_threads and _runs_now(task):
        # A deduplicated job too: the claim takes it only if it is due.
        jobs._add(_Stored(app, job.id, task.options.queue, task.name))
    return job


async def arun_after_response(
    task: Task[Any, R], args: Sequence[Any], kwargs: dict[str, Any]
) -> Job[R]:
    """:func:`run_after_response` with the store called in a thread, so an async view does
    not block its event loop (the thread sees the request's context)."""
    return await asyncio.to_thread(run_after_response, task, args, kwargs)


def _runs_now(task: Task[Any, Any]) -> bool:
    """A job due at once: a delayed one is for the workers (a claim after the response
    would find nothing). A job inserted in the caller's transaction is handed over too:
    that transaction has usually committed by the time the response is sent, and if not,
    the claim finds nothing and a worker runs the job once it commits."""
    call = task.call
    return call.delay == 0 and call.run_at is None


def _refused(
    task: Task[Any, R], new: NewJob, error: StoreError, jobs: RequestJobs
) -> NotStoredJob[R]:
    app = task.app
    memory = app.settings.after_response_fallback == "memory"
    logs.log(
        "after_response.not_stored", level="error", task=task.name, job=new.id,
        args_bytes=len(new.args.encode()) + len(new.kwargs.encode()),
        error=f"{type(error).__name__}: {error}",
        fallback="run in memory after the response" if memory else "none: the task will not run",
    )  # fmt: skip
    if memory:
        jobs._add(_InMemory(app, new))
    return NotStoredJob(app, new, error)


# -- the pool ------------------------------------------------------------------------------------
class AfterResponsePool:
    """The threads of one app that run after-response jobs in this process.

    ``after_response_threads`` jobs run at once; up to ``after_response_backlog`` more
    wait here for a free thread. A waiting job is only a note (its id): it is queued in
    the store all along, so a worker may run it first (the claim here then finds nothing),
    and dropping the note loses nothing. Past the backlog :meth:`submit` refuses, and the
    job is left to the workers. Threads start on first use and are daemons;
    :func:`shutdown` (registered with ``atexit``) starts no waiting job, gives running
    ones ``after_response_grace`` seconds, then requeues those still running.
    """

    def __init__(self, app: Offload) -> None:
        self.app = app
        settings = app.settings
        self.threads = settings.after_response_threads
        self.backlog = settings.after_response_backlog if self.threads else 0
        host = settings.hostname or socket.gethostname()
        #: The id this process's runs are recorded under (``host:pid:web-…``).
        self.worker_id = f"{host}:{os.getpid()}:web-{secrets.token_hex(3)}"
        #: Jobs run here, and jobs left to the workers (refused, or not started at exit).
        self.ran = 0
        self.left = 0
        self._room = self.threads + self.backlog
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._work: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._started: list[threading.Thread] = []
        self._running: dict[str, _Stored] = {}
        self._in_memory = 0  # runs without a record: waited for at exit, never requeued
        self._closed = False

    @property
    def pending(self) -> int:
        """Jobs handed over and not finished: running here or waiting for a thread."""
        return self.threads + self.backlog - self._room

    def submit(self, item: _Item) -> bool:
        """Run ``item`` here when a thread is free; False (and the job stays in the store
        for a worker) if the backlog is full or the pool is closed. Never blocks."""
        with self._lock:
            if self._closed or self._room == 0:
                self.left += 1
                reason = (
                    "the process is stopping" if self._closed
                    else "after_response_threads is 0" if not self.threads
                    else "every thread is busy and the backlog is full"
                )  # fmt: skip
                accepted = False
            else:
                self._room -= 1
                accepted = True
                if not self._started:
                    self._start_threads()
        if accepted:
            self._work.put(item)
        else:
            _log_left(item, reason)
        return accepted

    def _start_threads(self) -> None:
        for n in range(self.threads):
            thread = threading.Thread(
                target=self._serve, name=f"offload-after-response-{n}", daemon=True
            )
            thread.start()
            self._started.append(thread)

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            try:
                if isinstance(item, _Stored):
                    self._run_stored(item)
                else:
                    self._run_in_memory(item)
            except Exception as exc:  # the job stays in the store; its lease covers it
                logs.log(
                    "after_response.error", level="error", task=_task_of(item),
                    job=_id_of(item), error=f"{type(exc).__name__}: {exc}",
                )  # fmt: skip
            finally:
                with self._lock:
                    self._room += 1
                    self._changed.notify_all()

    def _run_stored(self, item: _Stored) -> None:
        with self._lock:
            if self._closed:  # stopping: a job not started yet stays queued
                self.left += 1
                return
            self._running[item.job_id] = item
        try:
            runner = Runner(self.app, worker_id=self.worker_id)
            ran = runner.run(
                queues=[item.queue], tasks=[item.task], job_ids=[item.job_id], max_jobs=1
            )
        finally:
            with self._lock:
                self._running.pop(item.job_id, None)
        with self._lock:
            self.ran += ran

    def _run_in_memory(self, item: _InMemory) -> None:
        with self._lock:
            closed = self._closed
            if closed:
                self.left += 1
            else:
                self._in_memory += 1
        if closed:
            _log_left(item, "the process is stopping")
            return
        try:
            self._execute_in_memory(item.job)
        finally:
            with self._lock:
                self._in_memory -= 1

    def _execute_in_memory(self, new: NewJob) -> None:
        job = ClaimedJob(
            id=new.id, task=new.task, queue=new.queue, args=new.args, kwargs=new.kwargs,
            attempt=1, max_attempts=1, errors=0, crashes=0, timeout=new.timeout,
            options=new.options, priority=new.priority,
        )  # fmt: skip
        started = time.monotonic()
        outcome = execute(self.app, job, NullReporter(), worker_id=self.worker_id)
        ok = outcome.state is JobState.SUCCEEDED
        logs.log(
            "after_response.memory_run", level="info" if ok else "error", task=new.task,
            job=new.id, state=outcome.state.value, reason=outcome.reason or None,
            duration_ms=round((time.monotonic() - started) * 1000),
        )  # fmt: skip
        with self._lock:
            self.ran += 1

    # -- stopping ---------------------------------------------------------------------------
    def close(self) -> None:
        """Accept no more jobs, and forget those waiting for a thread: they stay queued in
        the store for the workers (a job refused by the store is dropped, with a log line)."""
        with self._lock:
            self._closed = True
        while True:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                return
            if item is None:
                continue
            with self._lock:
                self._room += 1
                self.left += 1
            if isinstance(item, _InMemory):
                _log_left(item, "the process is stopping")

    def wait(self, deadline: float) -> bool:
        """Wait until no job runs here, or ``deadline`` (monotonic) passes; whether none
        runs."""
        with self._lock:
            while self._running or self._in_memory:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def hand_back(self) -> list[str]:
        """Requeue the stored jobs still running here (without using an attempt), so a
        worker runs them without waiting for the lease; returns their ids. A run that
        finishes afterwards has its outcome refused (the attempt is no longer running)."""
        with self._lock:
            running = list(self._running.values())
        requeued = []
        for item in running:
            try:
                if self._requeue(item):
                    requeued.append(item.job_id)
            except Exception as exc:  # the store is away: the lease covers the job
                logs.log(
                    "after_response.error", level="error", task=item.task, job=item.job_id,
                    error=f"{type(exc).__name__}: {exc}",
                )  # fmt: skip
        return requeued

    def _requeue(self, item: _Stored) -> bool:
        store = self.app.store
        row = store.job_get(item.job_id)
        if row is None or row.state is not JobState.RUNNING or row.worker_id != self.worker_id:
            return False
        outcome = Outcome(
            item.job_id, row.attempt, JobState.QUEUED, count_error=False,
            reason="web process stopped before the job finished; requeued",
            worker_id=self.worker_id,
        )  # fmt: skip
        accepted = store.job_write(outcomes=[outcome])[0]
        if accepted:
            logs.log("job.requeued", job=item.job_id, task=item.task, reason=outcome.reason)
        return accepted

    def stop_threads(self) -> None:
        for _ in self._started:
            self._work.put(None)


def _task_of(item: _Item) -> str:
    return item.task if isinstance(item, _Stored) else item.job.task


def _id_of(item: _Item) -> str:
    return item.job_id if isinstance(item, _Stored) else item.job.id


def _log_left(item: _Item, reason: str) -> None:
    if isinstance(item, _Stored):
        logs.log(
            "after_response.left_queued", task=item.task, job=item.job_id,
            reason=f"{reason}: a worker will run it",
        )  # fmt: skip
    else:  # nothing stored it: say so loudly
        logs.log(
            "after_response.dropped", level="error", task=item.job.task, job=item.job.id,
            reason=f"{reason}: the store refused the job and no thread was free to run it",
        )  # fmt: skip


# -- one pool per app and process ---------------------------------------------------------------
_pools: dict[Offload, AfterResponsePool] = {}
_pools_lock = threading.Lock()
_atexit_registered = False


def pool_for(app: Offload) -> AfterResponsePool:
    """This process's pool of ``app`` (made on first use)."""
    global _atexit_registered
    pool = _pools.get(app)
    if pool is not None:
        return pool
    with _pools_lock:
        pool = _pools.get(app)
        if pool is None:
            pool = _pools[app] = AfterResponsePool(app)
            if not _atexit_registered:
                atexit.register(shutdown)
                _atexit_registered = True
        return pool


def _submit(item: _Item) -> None:
    pool_for(item.app).submit(item)


def shutdown(app: Offload | None = None, grace: float | None = None) -> list[str]:
    """Stop the pool of ``app`` (default: every pool of this process): start no waiting
    job, give running ones ``grace`` seconds (default: ``after_response_grace``), then
    requeue those still running. Returns the ids requeued. Runs at interpreter exit; a
    later ``after_response`` of that app starts a new pool.
    """
    with _pools_lock:
        chosen = list(_pools) if app is None else [app] if app in _pools else []
        pools = [_pools.pop(a) for a in chosen]
    if not pools:
        return []
    for pool in pools:
        pool.close()
    if grace is None:
        grace = max(p.app.settings.after_response_grace for p in pools)
    deadline = time.monotonic() + grace
    requeued: list[str] = []
    for pool in pools:
        back = [] if pool.wait(deadline) else pool.hand_back()
        requeued.extend(back)
        pool.stop_threads()
        logs.log(
            "after_response.stopped", worker=pool.worker_id, ran=pool.ran,
            requeued=len(back), left_to_workers=pool.left,
        )  # fmt: skip
    return requeued


def _forget_pools_in_child() -> None:
    # A forked child (a pre-forking server's worker) has none of its parent's threads.
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_in_child)
