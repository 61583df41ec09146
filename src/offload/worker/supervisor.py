"""The supervisor: claims jobs, hands them to child processes, records what they report.

It runs no job code. One thread, one loop, blocked in ``multiprocessing.connection.wait``
on the children's pipes and exit sentinels, the store's wake-up socket and a signal socket.
Each turn of the loop it reads what the children sent, enforces timeouts, heartbeats,
writes everything pending in one ``job_write`` transaction, and claims as many jobs as it
has idle children (never more: no prefetch).

**Start method: fork, with no store connection open.** Children are forked from the
supervisor, so they inherit the imported app without pickling it and without the app
needing an importable ``module:attribute`` (a script may call :func:`run_worker` on an app
defined in ``__main__``). Fork is only safe if nothing is shared that must not be: the
supervisor closes its store (``app.close()``) right before every fork, so a child never
holds, let alone uses, a database connection opened by its parent; the supervisor keeps
no threads, so no lock can be copied mid-operation; and each child closes the pipe ends of
its siblings and the supervisor's sockets. The store reopens lazily on the supervisor's
next call, which costs one connect per child start (children are started rarely:
at boot, after a crash or timeout, and on recycling).

**Signals.** SIGTERM stops claiming and gives running jobs ``shutdown_grace`` seconds;
a second SIGTERM, a SIGINT or the end of the grace period kills them and requeues them
without using up an attempt. Each child leads its own process group, so a terminal's
Ctrl-C reaches only the supervisor and a timeout kills the job's subprocesses too. A
service manager that signals every process of the unit (systemd's default
``KillMode=control-group``) is tolerated: children killed that way during a stop are
requeued, not counted as crashes; ``KillMode=mixed`` lets running jobs finish.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import secrets
import signal
import socket
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_ready
from typing import TYPE_CHECKING, Any

from offload import logs
from offload.errors import ConfigError
from offload.retry import after_crash, after_error
from offload.settings import check_identifier
from offload.store.base import Store, Waiter
from offload.types import (
    ClaimedJob,
    ClaimRequest,
    ErrorInfo,
    JobState,
    MessageAdd,
    Outcome,
    ProcessInfo,
    ProgressUpdate,
    SaveValue,
)
from offload.worker import protocol
from offload.worker.child import child_main
from offload.worker.limits import describe_exit, peak_rss_self, rss_of
from offload.worker.signals import StopRequests
from offload.worker.slots import Ending, Slot
from offload.worker.writes import PendingWrites, Recorder, StoreGuard

if TYPE_CHECKING:
    from offload.app import Offload

#: Longest the loop blocks, so deadlines are checked even when nothing happens.
MAX_WAIT = 1.0
#: Batches are formed only while the recent jobs of every queue served ran shorter than
#: this (seconds, a moving average): for longer jobs one per child costs little.
BATCH_BELOW = 0.0005
#: Weight of the newest run time in that moving average.
DURATION_WEIGHT = 0.2


@dataclass(frozen=True)
class WorkerConfig:
    """What a supervisor runs: its queues and pool size, and for a drain when to stop.

    ``kind`` is the process-table kind (``supervisor`` or ``drain``). With
    ``exit_when_idle`` the supervisor stops once a claim finds nothing and no job runs.
    """

    queues: tuple[str, ...]
    concurrency: int
    kind: str = "supervisor"
    exit_when_idle: bool = False
    budget: float | None = None
    max_jobs: int | None = None
    lock_name: str | None = None

    def __post_init__(self) -> None:
        if not self.queues:
            raise ConfigError("expected at least one queue, got none")
        for queue in self.queues:
            check_identifier("queue", queue)
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigError(
                f"expected concurrency to be a positive int, got {self.concurrency!r}"
            )
        if self.budget is not None and not self.budget > 0:
            raise ConfigError(f"expected budget to be positive seconds, got {self.budget!r}")
        if self.max_jobs is not None and self.max_jobs < 1:
            raise ConfigError(f"expected max_jobs to be a positive int, got {self.max_jobs!r}")


@dataclass
class Stats:
    """Runs this supervisor finished, by how they ended."""

    run: int = 0
    succeeded: int = 0
    failed: int = 0
    requeued: int = 0


def default_queues(app: Offload) -> tuple[str, ...]:
    """The queues of the app's registered tasks (``default`` if it has none)."""
    return tuple(sorted({t.options.queue for t in app.tasks.values()})) or ("default",)


def host_name(app: Offload) -> str:
    """The host this worker reports: ``settings.hostname``, else the machine's name."""
    return app.settings.hostname or socket.gethostname()


def new_worker_id(host: str | None = None) -> str:
    """A process-table id: host, pid and a random suffix (pids are reused)."""
    return f"{host or socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Supervisor:
    """A pool of child processes serving some queues. See the module docstring.

    >>> Supervisor(app, WorkerConfig(queues=("default",), concurrency=4)).run()
    """

    def __init__(self, app: Offload, config: WorkerConfig, worker_id: str | None = None) -> None:
        self.app = app
        self.settings = app.settings
        self.config = config
        self.host = host_name(app)
        self.worker_id = worker_id or new_worker_id(self.host)
        self.stats = Stats()
        self.slots: list[Slot | None] = [None] * config.concurrency
        #: Children told to exit (recycling) whose replacement already took their index.
        self._retired: list[Slot] = []
        self._tasks = sorted(app.tasks)
        self._mp = multiprocessing.get_context("fork")
        self._guard = StoreGuard(self.worker_id)
        self._recorder = Recorder(lambda: self.app.store, self._guard)
        self._waiter: Waiter | None = None
        self._stops = StopRequests()
        self._waiter_fd: int | None = None
        self._started = time.time()
        self._begun = time.monotonic()
        self._stopping = False
        self._fast = False
        self._grace_end = 0.0
        self._claimed = 0
        self._idle = False
        self._woken = True
        self._next_poll = 0.0
        self._next_heartbeat = 0.0
        self._rows_stale = False
        self._respawn_at: dict[int, float] = {}
        self._spawn_failures = 0
        #: Moving average of recent run times (seconds) by queue: decides batching.
        self._durations: dict[str, float] = {}

    @property
    def store(self) -> Store:
        """The app's store (reopened after each fork; see the module docstring)."""
        return self.app.store

    @property
    def _pending(self) -> PendingWrites:
        return self._recorder.pending

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> Stats:
        """Serve until stopped (SIGTERM, SIGINT, or idle/budget for a drain); return stats."""
        self._stops.install()
        try:
            for index in range(self.config.concurrency):
                self._spawn(index)
            self._waiter = self._guard.call("waiter", lambda: self.store.waiter(self.config.queues))
            if not self._tasks:
                logs.log(
                    "worker.no_tasks", "warning", worker=self.worker_id,
                    reason="the app registers no tasks, so this worker can claim no job",
                )  # fmt: skip
            logs.log(
                "worker.started", worker=self.worker_id, kind=self.config.kind,
                pid=os.getpid(), queues=",".join(self.config.queues),
                concurrency=self.config.concurrency,
            )  # fmt: skip
            while not self._finished():
                try:
                    self._turn()
                except Exception as exc:  # the loop must outlive any bug in one turn
                    frame = traceback.extract_tb(exc.__traceback__)[-1]
                    logs.log(
                        "worker.error", "error", worker=self.worker_id, error=repr(exc),
                        where=f"{frame.filename}:{frame.lineno}",
                    )  # fmt: skip
                    time.sleep(0.1 + random.random() * 0.4)
        finally:
            self._shutdown()
            self._stops.close()
        logs.log(
            "worker.stopped", worker=self.worker_id, run=self.stats.run,
            succeeded=self.stats.succeeded, failed=self.stats.failed,
        )  # fmt: skip
        return self.stats

    def _turn(self) -> None:
        ready = self._wait()
        self._handle_signals()
        for slot in self._live_slots():
            if slot.conn in ready or slot.process.sentinel in ready:
                self._read(slot)
            if slot.process.sentinel in ready:
                self._reap(slot)
        self._note_wakeups(ready)
        self._limits()
        self._heartbeat()
        self._respawn()
        # Outcomes and the next claim go out in one transaction (one commit); with no
        # claim due, pending writes alone.
        if not self._claim():
            self._recorder.flush()
        self._check_drain()

    def _finished(self) -> bool:
        return self._stopping and not any(s.job for s in self._live_slots())

    def _wait(self) -> list[Any]:
        objects: list[Any] = []
        for slot in self._live_slots():
            objects.append(slot.process.sentinel)
            if not slot.eof:
                objects.append(slot.conn)
        objects.append(self._stops)
        timeout = self._timeout()
        waiter = self._waiter
        fd = waiter.selectable() if waiter is not None else None
        if fd is not None:
            objects.append(fd)
        elif waiter is not None:
            timeout = self._wait_without_fd(waiter, timeout)
        self._waiter_fd = fd
        return list(wait_ready(objects, timeout))

    def _wait_without_fd(self, waiter: Waiter, timeout: float) -> float:
        """Use a waiter that cannot join the select (PostgreSQL's LISTEN connection).

        With no job running, nothing but the waiter can need attention soon, so block in
        it (a dying idle child or a signal is handled at most ``timeout`` later). With
        jobs running, only peek at it, so children are never kept waiting.
        """
        slots = self._live_slots()
        if not any(s.job for s in slots):
            self._woken = waiter.wait(timeout) or self._woken
            return 0.0
        if any(s.idle for s in slots):
            self._woken = waiter.wait(0.001) or self._woken
        return timeout

    def _timeout(self) -> float:
        """Seconds until the loop must act unprompted: a deadline, a heartbeat, a poll.

        Every moment listed here must move into the future once acted on, or the loop
        would spin; hence the conditions (a deadline already acted on, a poll while
        claiming is over, a respawn while stopping are left out).
        """
        now = time.monotonic()
        slots = self._live_slots()
        moments = [now + MAX_WAIT, self._next_heartbeat]
        for slot in slots:
            if slot.job is not None and slot.ending is None and slot.deadline is not None:
                moments.append(slot.deadline)
            if slot.kill_at is not None:
                moments.append(slot.kill_at)
            if slot.start_by is not None:
                moments.append(slot.start_by)
        flush_at = self._recorder.next_flush()
        if flush_at is not None:
            moments.append(flush_at)
        if self._stopping:
            if not self._fast:
                moments.append(self._grace_end)
        else:
            if self._may_claim() and any(s.idle for s in slots):
                # Claim at once when there may be work (a slot freed up, a wake-up came),
                # else at the next poll.
                eager = self._woken or not self._idle
                moments.append(max(now if eager else self._next_poll, self._guard.retry_at))
            if self.config.budget is not None:
                moments.append(self._begun + self.config.budget)
            moments.extend(self._respawn_at.values())
        return max(0.0, min(moments) - now)

    def _may_claim(self) -> bool:
        limit = self.config.max_jobs
        return not self._stopping and (limit is None or self._claimed < limit)

    def _live_slots(self) -> list[Slot]:
        live = [s for s in self.slots if s is not None and not s.dead]
        return live + [s for s in self._retired if not s.dead] if self._retired else live

    # -- children --------------------------------------------------------------------------
    def _spawn(self, index: int) -> None:
        parent_conn, child_conn = self._mp.Pipe(duplex=True)
        inherited = [s.conn.fileno() for s in self._live_slots()]
        inherited.append(parent_conn.fileno())
        inherited.extend(self._stops.fds())
        fd = self._waiter.selectable() if self._waiter is not None else None
        if fd is not None:
            inherited.append(fd)
        # See the module docstring: no store connection may cross the fork.
        self.app.close()
        process = self._mp.Process(
            target=child_main,
            args=(self.app, child_conn, self.worker_id, os.getpid(), inherited),
            name=f"offload-child-{index}",
        )
        process.start()
        child_conn.close()
        recycle_at = random.randint(self.settings.recycle_min, self.settings.recycle_max)
        self.slots[index] = Slot(
            index=index, process=process, conn=parent_conn,
            process_id=f"{self.worker_id}/{process.pid}", started_at=time.time(),
            recycle_at=recycle_at,
        )  # fmt: skip
        self._respawn_at.pop(index, None)
        self._rows_stale = True  # show the new child in the process table without delay
        logs.log("child.started", worker=self.worker_id, pid=process.pid, slot=index)

    def _respawn(self) -> None:
        if self._stopping:
            return
        now = time.monotonic()
        for index, at in list(self._respawn_at.items()):
            if now >= at:
                self._spawn(index)

    def _read(self, slot: Slot) -> None:
        """Handle every message the child has sent so far."""
        # Taken before reading: every "done" the child sent before this moment is read
        # below, which is what handing back a batch's late jobs relies on.
        now = time.monotonic()
        try:
            while not slot.eof and slot.conn.poll(0):
                self._on_message(slot, protocol.decode(slot.conn.recv_bytes()))
        except (EOFError, OSError):
            slot.eof = True  # the child is exiting; its sentinel says when it is gone
        self._hand_back_late(slot, now)

    def _on_message(self, slot: Slot, message: protocol.Message) -> None:
        op = message.get("op")
        job = slot.job
        if op == "returned":
            self._on_returned(slot, message.get("jobs") or [])
            return
        if job is None or message.get("job", job.id) != job.id:
            return  # a late report of a job the supervisor already gave up on
        if op == "progress":
            self._pending.progress[(job.id, job.attempt)] = ProgressUpdate(
                job.id, job.attempt, float(message["current"]), message.get("total"),
                message.get("message"),
            )  # fmt: skip
        elif op == "message":
            self._pending.messages.append(MessageAdd(job.id, job.attempt, str(message["text"])))
        elif op == "save":
            self._pending.saves.append(
                SaveValue(job.id, job.attempt, str(message["key"]), str(message["value"]))
            )
        elif op == "done":
            outcome = protocol.outcome_from_dict(message["outcome"])
            if (outcome.job_id, outcome.attempt) == (job.id, job.attempt):
                slot.peak_rss = max(slot.peak_rss, int(message.get("peak_rss", 0)))
                self._finish(slot, outcome)
                self._note_duration(job.queue, message.get("seconds"))
                self._spawn_failures = 0
                if slot.waiting:
                    slot.next_job(time.monotonic())
                self._maybe_recycle(slot)

    def _on_returned(self, slot: Slot, ids: list[str]) -> None:
        """The child stopped its batch: the job it was due to run next and the rest were
        not started (their turn came after ``start_by``)."""
        job = slot.job
        if job is not None and job.id in ids:
            slot.end_job()
            self._hand_back(job)
        for waiting in slot.take_waiting():
            self._hand_back(waiting)
        self._maybe_recycle(slot)

    def _hand_back_late(self, slot: Slot, now: float) -> None:
        """Past ``start_by`` the child starts no waiting job of its batch (see protocol.py):
        requeue them now, so they do not wait behind a long job.

        ``now`` must precede the read of the child's pipe that just ended: a "done" sent
        before ``start_by`` may let the child start the next job, and only once all of
        those are read is the first job not reported done the only one it may run.
        """
        if slot.start_by is not None and now >= slot.start_by:
            for job in slot.take_waiting():
                self._hand_back(job)

    def _hand_back(self, job: ClaimedJob) -> None:
        """Requeue a claimed job that never started, without using an attempt."""
        wait = self.settings.batch_wait
        self._pending.outcomes.append(
            Outcome(
                job.id, job.attempt, JobState.QUEUED, count_error=False,
                reason=f"handed back unstarted after waiting {wait:g} s in a batch",
                worker_id=self.worker_id,
            )
        )  # fmt: skip
        self.stats.requeued += 1
        self._idle = False  # it is due now
        logs.log("job.handed_back", job=job.id, attempt=job.attempt, queue=job.queue)

    def _note_duration(self, queue: str, seconds: object) -> None:
        if not isinstance(seconds, int | float):
            return
        previous = self._durations.get(queue)
        if previous is None:
            self._durations[queue] = float(seconds)
        else:
            self._durations[queue] = previous + DURATION_WEIGHT * (seconds - previous)

    def _batch_size(self) -> int:
        """Jobs per idle child for the next claim: more than one only while every queue
        served has recently run its jobs in well under a millisecond, and never so many
        that the last would expect to wait more than a quarter of ``batch_wait``."""
        most = self.settings.batch_max
        if most <= 1:
            return 1
        recent = [self._durations.get(q) for q in self.config.queues]
        if not recent or any(d is None for d in recent):
            return 1
        slowest = max(d for d in recent if d is not None)
        if slowest >= BATCH_BELOW:
            return 1
        return max(1, min(most, int(self.settings.batch_wait / (4 * max(slowest, 1e-6)))))

    def _maybe_recycle(self, slot: Slot) -> None:
        if self._stopping or slot.job is not None:
            return
        limit = self.settings.child_memory_limit
        rss = rss_of(slot.pid) if limit else 0
        why = None
        if slot.served >= slot.recycle_at:
            why = f"served {slot.served} jobs"
        elif limit and rss > limit:
            why = f"RSS {rss} bytes is over child_memory_limit {limit}"
        if why is None:
            return
        slot.retiring = True
        logs.log("child.recycle", worker=self.worker_id, pid=slot.pid, reason=why)
        self._send(slot, {"op": "stop"})
        # Its replacement starts now, while it exits: the slot is not left empty for the
        # time an interpreter takes to shut down.
        self._retired.append(slot)
        self._spawn(slot.index)

    def _send(self, slot: Slot, message: protocol.Message) -> bool:
        try:
            slot.conn.send_bytes(protocol.encode(message))
            return True
        except (OSError, ValueError):
            slot.eof = True
            return False

    def _reap(self, slot: Slot) -> None:
        """The child exited: settle its job, schedule a replacement."""
        slot.process.join(timeout=1.0)
        slot.dead = True
        exit_text = describe_exit(slot.process.exitcode)
        had_job = slot.job is not None
        if slot.job is not None:
            outcome = self._death_outcome(slot, slot.job, exit_text)
            if outcome is None:
                slot.end_job()
            else:
                self._finish(slot, outcome)
        # The rest of its batch never started: requeued, no crash counted for them.
        for job in slot.take_waiting():
            self._hand_back(job)
        slot.conn.close()
        self._pending.stopped.append(slot.process_id)
        expected = slot.retiring or slot.signalled or self._stopping
        logs.log(
            "child.exited", "info" if expected else "warning", worker=self.worker_id,
            pid=slot.pid, exit=exit_text,
        )  # fmt: skip
        if slot in self._retired:
            self._retired.remove(slot)
            return  # replaced when it was told to exit
        if self._stopping:
            return
        delay = 0.0
        if not (expected or had_job):
            # Dying while idle is the child's own fault (a broken import, a bad fork):
            # back off, so a broken environment does not become a fork loop.
            self._spawn_failures += 1
            delay = min(30.0, 0.25 * 2 ** min(self._spawn_failures, 8))
        self._respawn_at[slot.index] = time.monotonic() + delay

    def _death_outcome(self, slot: Slot, job: ClaimedJob, exit_text: str) -> Outcome | None:
        wid = self.worker_id
        if slot.ending is Ending.LOST:
            return None
        if slot.ending is Ending.TIMEOUT:
            text = f"timed out after {job.timeout:g} s"
            return after_error(job, ErrorInfo("Timeout", text), text, worker_id=wid)
        if slot.ending is Ending.SHUTDOWN or self._stopped_from_outside(slot):
            return Outcome(
                job.id, job.attempt, JobState.QUEUED, count_error=False,
                reason="worker stopped before the job finished; requeued", worker_id=wid,
            )  # fmt: skip
        message = f"the child process running the job died ({exit_text})"
        return after_crash(
            job, ErrorInfo("WorkerCrash", message), f"child {slot.pid} {exit_text}",
            crash_limit=self.settings.crash_limit, worker_id=wid,
        )  # fmt: skip

    def _stopped_from_outside(self, slot: Slot) -> bool:
        """A child killed by a stop signal while the worker stops: a service manager
        signalling the whole group (systemd's default KillMode), not a crash of the job."""
        stop_signals = (-signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP)
        return self._stopping and slot.process.exitcode in stop_signals

    def _finish(self, slot: Slot, outcome: Outcome) -> None:
        """A run ended: queue its outcome for the next write and log it."""
        job = slot.end_job()
        self._pending.outcomes.append(outcome)
        # A slot just freed up: the next claim should not wait for a poll or a wake-up.
        self._idle = False
        ok = outcome.state is JobState.SUCCEEDED
        requeue = outcome.state is JobState.QUEUED and not (outcome.count_error or outcome.crashed)
        if requeue:
            self.stats.requeued += 1
        else:
            slot.served += 1
            slot.failed += 0 if ok else 1
            self.stats.run += 1
            self.stats.succeeded += 1 if ok else 0
            self.stats.failed += 0 if ok else 1
        logs.log(
            _event_of(outcome), "info" if ok or requeue else "warning", job=outcome.job_id,
            task=job.task if job else None, attempt=outcome.attempt, pid=slot.pid,
            duration_ms=int((time.monotonic() - slot.job_started) * 1000),
            reason=outcome.reason or None,
        )  # fmt: skip

    # -- limits and stopping ---------------------------------------------------------------
    def _limits(self) -> None:
        now = time.monotonic()
        if self._stopping and not self._fast and now >= self._grace_end:
            self._stop(fast=True, why="shutdown grace period over")
        for slot in self._live_slots():
            if slot.start_by is not None and now >= slot.start_by:
                self._read(slot)  # every "done" sent so far, then what is late goes back
            if slot.job is None:
                continue
            if slot.kill_at is not None and now >= slot.kill_at:
                slot.kill_job(slot.ending or Ending.TIMEOUT)
            elif slot.ending is None and slot.deadline is not None and now >= slot.deadline:
                logs.log(
                    "job.timeout", "warning", job=slot.job.id, task=slot.job.task,
                    attempt=slot.job.attempt, pid=slot.pid, timeout=slot.job.timeout,
                )  # fmt: skip
                slot.terminate_job(Ending.TIMEOUT, now, self.settings.kill_grace)

    def _stop(self, *, fast: bool, why: str) -> None:
        """Stop claiming; with ``fast``, kill running jobs now (they are requeued)."""
        if not self._stopping:
            self._stopping = True
            self._respawn_at.clear()
            self._grace_end = time.monotonic() + self.settings.shutdown_grace
            logs.log("worker.stopping", worker=self.worker_id, reason=why, fast=fast)
        if fast and not self._fast:
            self._fast = True
            for slot in self._live_slots():
                if slot.job is not None:
                    # A job already past its timeout still ends as a timeout.
                    slot.kill_job(slot.ending or Ending.SHUTDOWN)

    def _check_drain(self) -> None:
        config = self.config
        if not config.exit_when_idle or self._stopping:
            return
        if config.budget is not None and time.monotonic() - self._begun >= config.budget:
            self._stop(fast=False, why="budget spent")
            return
        busy = any(s.job for s in self._live_slots())
        spent = config.max_jobs is not None and self._claimed >= config.max_jobs
        if not busy and (spent or self._idle):
            self._stop(fast=False, why="max jobs reached" if spent else "queue empty")

    # -- signals ---------------------------------------------------------------------------
    def request_stop(self, *, fast: bool = False) -> None:
        """Stop as SIGTERM would (``fast``: as SIGINT), from any thread (a test, a
        benchmark, an application embedding a worker).

        >>> threading.Timer(60, supervisor.request_stop).start()
        """
        self._stops.request(signal.SIGINT if fast else signal.SIGTERM)

    def _handle_signals(self) -> None:
        for signum in self._stops.take():
            graceful = signum == signal.SIGTERM and not self._stopping
            self._stop(fast=not graceful, why=f"received {signal.Signals(signum).name}")

    # -- the store -------------------------------------------------------------------------
    def _note_wakeups(self, ready: Sequence[Any]) -> None:
        waiter = self._waiter
        if waiter is not None and self._waiter_fd is not None and self._waiter_fd in ready:
            self._woken = waiter.wait(0) or self._woken

    def _claim(self) -> bool:
        """Claim for the idle children, writing what is pending in the same transaction;
        False if no claim was due (or the store is backing off)."""
        now = time.monotonic()
        if not self._may_claim() or not self._guard.ready():
            return False
        free = [s for s in self._live_slots() if s.idle]
        if not free or (self._idle and not self._woken and now < self._next_poll):
            return False
        limit = len(free) * self._batch_size()
        if self.config.max_jobs is not None:
            limit = min(limit, self.config.max_jobs - self._claimed)
        self._woken = False
        self._next_poll = now + self.settings.poll_interval
        request = ClaimRequest(
            worker_id=self.worker_id, queues=self.config.queues, tasks=self._tasks,
            limit=limit, lease=self.settings.lease,
        )  # fmt: skip
        jobs = self._recorder.flush_and_claim(request)
        if jobs is None:
            return True
        self._idle = len(jobs) < limit
        self._claimed += len(jobs)
        # Dealt out in claim order: the first jobs (highest priority, oldest) start first,
        # one on each child.
        start_by = time.monotonic() + self.settings.batch_wait
        for index, slot in enumerate(free):
            batch = jobs[index :: len(free)]
            if batch:
                self._dispatch(slot, batch, start_by)
        return True

    def _dispatch(self, slot: Slot, jobs: list[ClaimedJob], start_by: float) -> None:
        slot.start_batch(jobs, time.monotonic(), start_by)
        for job in jobs:
            logs.log(
                "job.started", job=job.id, task=job.task, attempt=job.attempt, pid=slot.pid,
                queue=job.queue,
            )  # fmt: skip
        message = {
            "op": "run",
            "jobs": [protocol.job_to_dict(job) for job in jobs],
            "start_by": start_by if len(jobs) > 1 else None,
        }
        if not self._send(slot, message):
            # The child died between its last message and this one; it never saw the jobs.
            slot.ending = Ending.SHUTDOWN

    def _heartbeat(self) -> None:
        """Renew leases, write the process table, renew the drain lock, rescue expired
        leases; the first failure ends the round, since with the store down each further
        call would block for its own timeout while children wait to be served."""
        now = time.monotonic()
        if now < self._next_heartbeat:
            if self._rows_stale and self._guard.ready():
                self._write_rows()
            return
        self._next_heartbeat = now + self.settings.heartbeat
        for step in (self._renew_leases, self._write_rows, self._renew_lock, self._rescue):
            if not step():
                return

    def _renew_leases(self) -> bool:
        runs = [(s.job.id, s.job.attempt) for s in self._live_slots() if s.job is not None]
        runs.extend((j.id, j.attempt) for s in self._live_slots() for j in s.waiting)
        # Outcomes not yet written still need their lease, or another worker would rescue
        # (and run again) a job that already finished here.
        runs.extend((o.job_id, o.attempt) for o in self._pending.outcomes)
        renewed = self._guard.call(
            "lease_renew",
            lambda: self.store.lease_renew(
                worker_id=self.worker_id, runs=runs, lease=self.settings.lease
            ),
        )
        if renewed is None:
            return False
        self._on_renewed(renewed.lost, renewed.cancel_requested)
        return True

    def _write_rows(self) -> bool:
        rows = self._rows()
        self._rows_stale = False
        self._guard.call("process_heartbeat", lambda: self.store.process_heartbeat(rows))
        return self._guard.ready()  # the call returns None either way; ready() tells

    def _rescue(self) -> bool:
        rescued = self._guard.call(
            "lease_rescue",
            lambda: self.store.lease_rescue_expired(crash_limit=self.settings.crash_limit),
        )
        for item in rescued or ():
            logs.log(
                "job.rescued", "warning", job=item.job_id, attempt=item.attempt,
                state=item.state.value, reason="lease expired",
            )  # fmt: skip
            self._idle = False  # rescued jobs are due now
        return rescued is not None

    def _on_renewed(self, lost: Sequence[str], cancel: Sequence[str]) -> None:
        lost_ids, cancel_ids = set(lost), set(cancel)
        for slot in self._live_slots():
            for waiting in list(slot.waiting):
                if waiting.id in lost_ids:
                    # Another worker owns it now: nothing of it is recorded here.
                    slot.waiting.remove(waiting)
                    logs.log("job.lost", "warning", job=waiting.id, attempt=waiting.attempt)
                elif waiting.id in cancel_ids:
                    self._send(slot, {"op": "cancel", "job": waiting.id})
            job = slot.job
            if job is None:
                continue
            if job.id in lost_ids and slot.ending is not Ending.LOST:
                # Another worker owns this job now; a second copy must not keep running.
                logs.log("job.lost", "warning", job=job.id, attempt=job.attempt, pid=slot.pid)
                slot.kill_job(Ending.LOST)
            elif job.id in cancel_ids and not slot.cancel_sent:
                # Once per run: a job that never reads the flag never drains its pipe, and
                # repeated sends would fill it and block the supervisor.
                slot.cancel_sent = True
                self._send(slot, {"op": "cancel", "job": job.id})

    def _renew_lock(self) -> bool:
        name = self.config.lock_name
        if name is None:
            return True
        held = self._guard.call(
            "lock", lambda: self.store.lock_acquire(name, self.worker_id, self.settings.lease)
        )
        if held is False:
            self._stop(fast=False, why=f"lost the lock {name} to another process")
        return held is not None

    def _rows(self) -> list[ProcessInfo]:
        queues = ",".join(self.config.queues)
        rss = rss_of(os.getpid())
        rows = [
            ProcessInfo(
                id=self.worker_id, kind=self.config.kind, host=self.host, pid=os.getpid(),
                queues=queues, started_at=self._started, served=self.stats.run,
                failed=self.stats.failed, rss=rss, peak_rss=max(rss, peak_rss_self()),
                info=json.dumps(
                    {"concurrency": self.config.concurrency, "heartbeat": self.settings.heartbeat}
                ),
            )
        ]  # fmt: skip
        for slot in self._live_slots():
            child_rss = rss_of(slot.pid)
            slot.peak_rss = max(slot.peak_rss, child_rss)
            rows.append(
                ProcessInfo(
                    id=slot.process_id, kind="child", host=self.host, pid=slot.pid,
                    parent_id=self.worker_id, queues=queues, started_at=slot.started_at,
                    served=slot.served, failed=slot.failed,
                    current_job=slot.job.id if slot.job else None, rss=child_rss,
                    peak_rss=slot.peak_rss,
                )
            )  # fmt: skip
        return rows

    # -- the end -----------------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Stop the children, write what is pending, leave the process table."""
        self._stop(fast=True, why="exiting")
        for slot in self._live_slots():
            if slot.job is None:
                self._send(slot, {"op": "stop"})
        deadline = time.monotonic() + self.settings.kill_grace
        for slot in self._live_slots():
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if slot.process.exitcode is None:
                slot.kill_job(slot.ending or Ending.SHUTDOWN)
                slot.process.join(timeout=5.0)
            self._read(slot)
            self._reap(slot)
        self._respawn_at.clear()
        self._final_flush()
        # One last row with the final counts, so a stopped worker in `offload ps --all`
        # shows what it served rather than what it had served at its last heartbeat.
        self._write_rows()
        ids = [self.worker_id]
        self._guard.call("process_stop", lambda: self.store.process_stop(ids))
        if self.config.lock_name:
            name = self.config.lock_name
            self._guard.call("lock_release", lambda: self.store.lock_release(name, self.worker_id))
        if self._waiter is not None:
            self._waiter.close()
        self.app.close()

    def _final_flush(self) -> None:
        # Outcomes must land while their leases are valid: retry for about one lease. Past
        # that another worker rescues the job, so nothing is lost by giving up.
        deadline = time.monotonic() + self.settings.lease
        while not self._recorder.flush(force=True):
            if time.monotonic() >= deadline:
                logs.log(
                    "worker.unrecorded", "error", worker=self.worker_id,
                    outcomes=len(self._pending.outcomes),
                    reason="store unavailable; the jobs run again after their lease expires",
                )  # fmt: skip
                return
            time.sleep(max(0.05, min(1.0, self._guard.retry_at - time.monotonic())))


def _event_of(outcome: Outcome) -> str:
    state = outcome.state
    if state is JobState.QUEUED:
        if outcome.crashed:
            return "job.crashed"
        return "job.retry" if outcome.count_error else "job.requeued"
    if state is JobState.QUARANTINED:
        return "job.quarantined"
    return f"job.{state.value}"
