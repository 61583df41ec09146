"""The job pool: a supervisor's child processes that run jobs, as one loop component.

It forks ``concurrency`` children and keeps them: it reads what they report (progress,
log lines, saved values, outcomes) into the pending writes, deals out the jobs a claim
brings (a small batch per child while jobs are tiny: :mod:`offload.worker.batching`),
hands back batch jobs that waited too long, enforces timeouts (SIGTERM, then SIGKILL after
``kill_grace``) and the shutdown grace, settles the job of a child that died
(:mod:`offload.worker.endings`, on :mod:`offload.retry`'s policy), and replaces children
that die or are recycled (after a random number of jobs, or once over
``child_memory_limit``). A fork that fails is tried again with backoff: a slot is never
lost. A claimed job that cannot be sent to a child (a row written into the database by
hand, with bytes or text where the column's type belongs) fails at once with a
``DispatchError`` naming the column; the rest of its batch goes out as usual.

The pool never calls the store: what it learns waits in the shared
:class:`~offload.worker.writes.Recorder` for the claimer's next transaction.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from offload import logs
from offload.boundary import job_problem, refused_row
from offload.types import ClaimedJob, JobState, MessageAdd, Outcome, ProgressUpdate, SaveValue
from offload.worker import protocol
from offload.worker.batching import BatchSizer
from offload.worker.child import child_main
from offload.worker.component import Component, Shared
from offload.worker.endings import death_outcome, event_of, handed_back
from offload.worker.limits import describe_exit
from offload.worker.process import fork
from offload.worker.slots import Ending, Slot
from offload.worker.writes import PendingWrites


class Pool(Component):
    """``concurrency`` children serving jobs. See the module docstring.

    ``on_work_due`` is called when a claim may find work at once (a child freed up, a job
    was handed back); ``fds_for_children`` gives the descriptors a new child must close.
    """

    def __init__(
        self,
        shared: Shared,
        *,
        on_work_due: Callable[[], None],
        fds_for_children: Callable[[], list[int]],
    ) -> None:
        self._shared = shared
        self._settings = shared.settings
        self._worker_id = shared.worker_id
        self._work_due = on_work_due
        self._fds_for_children = fds_for_children
        self.slots: list[Slot | None] = [None] * shared.config.concurrency
        #: Children told to exit (recycling) whose replacement already took their index.
        self._retired: list[Slot] = []
        self._respawn_at: dict[int, float] = {}
        self._spawn_failures = 0
        #: Forks that failed in a row (each waits longer before the next try).
        self._fork_failures = 0
        self._sizer = BatchSizer(
            shared.config.queues,
            batch_max=self._settings.batch_max,
            batch_wait=self._settings.batch_wait,
        )
        self._stopping = False
        #: Running jobs were ended (fast stop, or the shutdown grace ran out).
        self._fast = False
        self._grace_end = 0.0
        #: Children started so far (the process table shows a new one without delay).
        self.started = 0
        #: Bumped whenever what a child runs changes (a dispatch, a job's end): the
        #: process table shows the current jobs soon after (see maintenance/rows.py).
        self.changes = 0

    @property
    def _pending(self) -> PendingWrites:
        return self._shared.recorder.pending

    # -- the component ---------------------------------------------------------------------
    def start(self) -> None:
        for index in range(self._shared.config.concurrency):
            self._spawn(index)

    def waitables(self) -> Iterable[Any]:
        objects: list[Any] = []
        for slot in self.live_slots():
            objects.append(slot.child.sentinel)
            if not slot.child.eof:
                objects.append(slot.child.conn)
        return objects

    def next_at(self) -> float | None:
        """A deadline not yet acted on, a kill, a batch's ``start_by``, the end of the
        shutdown grace, a respawn (not while stopping)."""
        moments: list[float] = []
        for slot in self.live_slots():
            if slot.job is not None and slot.ending is None and slot.deadline is not None:
                moments.append(slot.deadline)
            if slot.kill_at is not None:
                moments.append(slot.kill_at)
            if slot.job is not None and slot.ending is None and slot.cancel_by is not None:
                moments.append(slot.cancel_by)
            if slot.start_by is not None:
                moments.append(slot.start_by)
        if self._stopping:
            if not self._fast:
                moments.append(self._grace_end)
        else:
            moments.extend(self._respawn_at.values())
        return min(moments, default=None)

    def tick(self, now: float, ready: Sequence[Any]) -> None:
        for slot in self.live_slots():
            child = slot.child
            if child.conn in ready or child.sentinel in ready:
                self._read(slot)
            if child.sentinel in ready:
                self._reap(slot)
        now = time.monotonic()  # reading a batch of reports takes a while
        self._enforce_limits(now)
        self._respawn(now)

    def stop(self, fast: bool) -> None:
        """Stop replacing children and start the shutdown grace; with ``fast``, kill
        running jobs now (they are requeued)."""
        if not self._stopping:
            self._stopping = True
            self._respawn_at.clear()
            self._grace_end = time.monotonic() + self._settings.shutdown_grace
        if fast:
            self._end_running()

    def busy(self) -> bool:
        """A job is running."""
        return any(s.job for s in self.live_slots())

    def fds(self) -> list[int]:
        return [s.child.conn.fileno() for s in self.live_slots()]

    def close(self) -> None:
        """Stop the children (those still running a job were killed by ``stop``), settle
        what they leave."""
        for slot in self.live_slots():
            if slot.job is None:
                slot.child.send({"op": "stop"})
        deadline = time.monotonic() + self._settings.kill_grace
        for slot in self.live_slots():
            child = slot.child
            child.join(timeout=max(0.0, deadline - time.monotonic()))
            if child.exitcode is None:
                slot.kill_job(slot.ending or Ending.SHUTDOWN)
                child.join(timeout=5.0)
            self._read(slot)
            self._reap(slot)
        self._respawn_at.clear()

    # -- for the other components ----------------------------------------------------------
    def live_slots(self) -> list[Slot]:
        """The slots whose child has not been reaped, retiring children included, each
        once (a retiring child whose replacement could not be forked yet still holds its
        index)."""
        live = [s for s in self.slots if s is not None and not s.child.dead]
        if not self._retired:
            return live
        return live + [s for s in self._retired if not s.child.dead and s not in live]

    def idle_slots(self) -> list[Slot]:
        """The slots ready for a job now."""
        return [s for s in self.live_slots() if s.idle]

    def has_idle(self) -> bool:
        """A slot is ready for a job now."""
        return any(s.idle for s in self.live_slots())

    def batch_size(self) -> int:
        """Jobs per idle child for the next claim (see :mod:`offload.worker.batching`)."""
        return self._sizer.size()

    def runs(self) -> list[tuple[str, int]]:
        """``(job id, attempt)`` of every job the children hold: running, then waiting."""
        slots = self.live_slots()
        runs = [(s.job.id, s.job.attempt) for s in slots if s.job is not None]
        runs.extend((j.id, j.attempt) for s in slots for j in s.waiting)
        return runs

    def deal(self, free: Sequence[Slot], jobs: list[ClaimedJob]) -> None:
        """Send claimed jobs to the ``free`` slots, dealt out in claim order: the first
        jobs (highest priority, oldest) start first, one on each child. A job that cannot
        be sent (see :func:`offload.boundary.job_problem`) fails at once instead."""
        runnable = [job for job in jobs if self._dispatchable(job)]
        start_by = time.monotonic() + self._settings.batch_wait
        for index, slot in enumerate(free):
            batch = runnable[index :: len(free)]
            if batch:
                self._dispatch(slot, batch, start_by)

    # -- children --------------------------------------------------------------------------
    def _spawn(self, index: int) -> bool:
        """Fork the child of slot ``index``; if the fork fails, try again later with
        backoff (False). The slot's previous child must be gone or retiring."""
        previous = self.slots[index]
        if previous is not None and not (previous.child.dead or previous.retiring):
            # Never orphan a child that still serves its slot (nothing would read it).
            logs.log(
                "child.spawn_refused", "error", worker=self._worker_id, slot=index,
                pid=previous.pid, reason="the slot's child still serves it",
            )  # fmt: skip
            self._respawn_at.pop(index, None)
            return False
        try:
            child = fork(
                self._shared.app, child_main, worker_id=self._worker_id,
                name=f"offload-child-{index}", close_fds=self._fds_for_children(),
            )  # fmt: skip
        except OSError as exc:
            # No memory, too many processes or descriptors: the slot waits, never lost.
            self._fork_failures += 1
            delay = min(30.0, 0.25 * 2 ** min(self._fork_failures - 1, 7))
            delay *= 0.75 + random.random() / 2
            self._respawn_at[index] = time.monotonic() + delay
            logs.log(
                "child.fork_failed", "error", worker=self._worker_id, slot=index,
                error=repr(exc), retry_in=round(delay, 2),
            )  # fmt: skip
            return False
        self._fork_failures = 0
        recycle_at = random.randint(self._settings.recycle_min, self._settings.recycle_max)
        self.slots[index] = Slot(index=index, child=child, recycle_at=recycle_at)
        self._respawn_at.pop(index, None)
        self.started += 1
        logs.log("child.started", worker=self._worker_id, pid=child.pid, slot=index)
        return True

    def _respawn(self, now: float) -> None:
        if self._stopping:
            return
        for index, at in list(self._respawn_at.items()):
            if now >= at:
                self._spawn(index)

    def _dispatchable(self, job: ClaimedJob) -> bool:
        """True if ``job`` can be sent to a child; else it fails now (DispatchError)."""
        problem = job_problem(job, self._settings.max_payload_bytes)
        if problem is None:
            return True
        self._fail_undispatchable(job, problem)
        return False

    def _fail_undispatchable(self, job: ClaimedJob, problem: str) -> None:
        """Record that ``job`` failed before any child saw it (no slot holds it)."""
        if type(job.id) is not str or type(job.attempt) is not int:
            # No fenced write can name this run: leave it to its lease, which runs out
            # (the rescue counts a crash, so the job ends quarantined).
            logs.log(
                "job.undispatchable", "error", job=repr(job.id), attempt=repr(job.attempt),
                reason=f"cannot dispatch the job: {problem}",
            )  # fmt: skip
            return
        outcome = refused_row(job, problem, worker_id=self._worker_id)
        self._pending.outcomes.append(outcome)
        self._work_due()  # the slot it was meant for is still free
        logs.log(
            event_of(outcome), "warning", job=job.id, task=job.task, attempt=job.attempt,
            reason=outcome.reason,
        )  # fmt: skip

    def _dispatch(self, slot: Slot, jobs: list[ClaimedJob], start_by: float) -> None:
        """Send ``jobs`` to ``slot``'s child; a job whose message cannot be encoded fails
        at once, and the slot gets the others (or stays idle)."""
        message = {
            "op": "run",
            "jobs": [protocol.job_to_dict(job) for job in jobs],
            "start_by": start_by if len(jobs) > 1 else None,
        }
        try:
            data = protocol.encode(message)
        except (TypeError, ValueError, RecursionError):
            # A value job_problem let through; find which job, send the others.
            jobs = [job for job in jobs if self._encodes(job)]
            if not jobs:
                return
            message["jobs"] = [protocol.job_to_dict(job) for job in jobs]
            message["start_by"] = start_by if len(jobs) > 1 else None
            data = protocol.encode(message)
        # Only once nothing can fail is the batch recorded on the slot (a slot must never
        # hold a job its child was not sent).
        slot.start_batch(jobs, time.monotonic(), start_by)
        self.changes += 1
        for job in jobs:
            logs.log(
                "job.started", job=job.id, task=job.task, attempt=job.attempt, pid=slot.pid,
                queue=job.queue,
            )  # fmt: skip
        if not slot.child.send_encoded(data):
            # The child died between its last message and this one; it never saw the jobs.
            slot.ending = Ending.SHUTDOWN

    def _encodes(self, job: ClaimedJob) -> bool:
        try:
            protocol.encode(protocol.job_to_dict(job))
        except (TypeError, ValueError, RecursionError) as exc:
            self._fail_undispatchable(job, f"the job cannot be encoded ({exc})")
            return False
        return True

    def _read(self, slot: Slot) -> None:
        """Handle every message the child has sent so far."""
        # Taken before reading: every "done" the child sent before this moment is read
        # below, which is what handing back a batch's late jobs relies on.
        now = time.monotonic()
        child = slot.child
        while True:
            # Only the pipe's own errors mean the child is gone: an error while handling
            # a message (a fork that fails while recycling) is not this child's.
            try:
                if not child.has_message():
                    break
                message = child.receive()
            except (EOFError, OSError):
                child.eof = True  # the child is exiting; its sentinel says when it is gone
                break
            try:
                self._on_message(slot, message)
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                # A malformed report (job code can put odd values in progress, say):
                # dropped, the others of this read are still handled.
                logs.log(
                    "child.bad_message", "warning", worker=self._worker_id, pid=slot.pid,
                    op=str(message.get("op")), error=repr(exc),
                )  # fmt: skip
        self._hand_back_late(slot, now)

    def _on_message(self, slot: Slot, message: protocol.Message) -> None:
        op = message.get("op")
        job = slot.job
        if op == "returned":
            self._on_returned(slot, message.get("runs") or [])
            return
        if (
            job is None
            or message.get("job", job.id) != job.id
            or message.get("attempt", job.attempt) != job.attempt
        ):
            return  # a late report of a run the supervisor already gave up on
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
                slot.child.note_peak_rss(int(message.get("peak_rss", 0)))
                self._finish(slot, outcome)
                seconds = message.get("seconds")
                self._sizer.note(job.queue, seconds)
                self._shared.stats.run_seconds.observe(seconds)
                self._spawn_failures = 0
                if slot.waiting:
                    following = slot.next_job(time.monotonic())
                    if following is not None and (following.id, following.attempt) in slot.lost:
                        # Its lease went to another worker while it waited: the child is
                        # starting it now, and a second copy must not run.
                        slot.kill_job(Ending.LOST)
                self._maybe_recycle(slot)

    def _maybe_recycle(self, slot: Slot) -> None:
        """Retire ``slot``'s child if it served its share or grew too big, once: a slot
        already retiring (its replacement may run already) is left alone."""
        # A retiring child's late "returned" must not recycle it again: a second
        # replacement would orphan the first and register its pipe twice, wedging the loop.
        if self._stopping or slot.retiring or slot.job is not None or slot.child.dead:
            return
        limit = self._settings.child_memory_limit
        rss = slot.child.rss() if limit else 0
        why = None
        if slot.runs >= slot.recycle_at:
            why = f"served {slot.runs} jobs"
        elif limit and rss > limit:
            why = f"RSS {rss} bytes is over child_memory_limit {limit}"
        if why is None:
            return
        slot.retiring = True
        logs.log("child.recycle", worker=self._worker_id, pid=slot.pid, reason=why)
        slot.child.send({"op": "stop"})
        # Its replacement starts now, while it exits: the slot is not left empty for the
        # time an interpreter takes to shut down. If the fork fails, _spawn schedules
        # another try (the retiring child keeps the index until then).
        self._retired.append(slot)
        self._spawn(slot.index)

    def _reap(self, slot: Slot) -> None:
        """The child exited: settle its job, schedule a replacement."""
        child = slot.child
        child.join(timeout=1.0)
        child.dead = True
        exit_text = describe_exit(child.exitcode)
        had_job = slot.job is not None
        if slot.job is not None:
            outcome = death_outcome(
                slot, slot.job, exit_text, stopping=self._stopping,
                crash_limit=self._settings.crash_limit, worker_id=self._worker_id,
                cancel_grace=self._settings.cancel_grace,
            )  # fmt: skip
            if outcome is None:
                # Its lease was lost (another worker owns the job): nothing is written,
                # and the run counts as refused.
                slot.end_job()
                slot.runs += 1
                slot.counts.refused += 1
                self._shared.stats.refused += 1
            else:
                self._finish(slot, outcome)
        # The rest of its batch never started: requeued, no crash counted for them.
        for job in slot.take_waiting():
            self._hand_back(slot, job)
        slot.unreturned.clear()  # a dead child returns nothing more
        self.changes += 1
        child.close()
        self._pending.stopped.append(child.process_id)
        expected = slot.retiring or child.signalled or self._stopping
        logs.log(
            "child.exited", "info" if expected else "warning", worker=self._worker_id,
            pid=slot.pid, exit=exit_text,
        )  # fmt: skip
        if slot in self._retired:
            self._retired.remove(slot)
            return  # replaced when it was told to exit (or a replacement is scheduled)
        if self._stopping:
            return
        delay = 0.0
        if not (expected or had_job):
            # Dying while idle is the child's own fault (a broken import, a bad fork):
            # back off, so a broken environment does not become a fork loop.
            self._spawn_failures += 1
            delay = min(30.0, 0.25 * 2 ** min(self._spawn_failures, 8))
        self._respawn_at[slot.index] = time.monotonic() + delay

    # -- jobs ------------------------------------------------------------------------------
    def _on_returned(self, slot: Slot, runs: list[Any]) -> None:
        """The child stopped its batch: the job it was due to run next and the rest were
        not started (their turn came after ``start_by``).

        Matched on ``(id, attempt)`` against what this slot holds of the batch: the job
        it was to run next, those waiting, those already handed back (``unreturned``).
        Anything else is stale and ignored. The batch is over either way.
        """
        returned = {(str(run[0]), int(run[1])) for run in runs}
        job = slot.job
        if job is not None and (job.id, job.attempt) in returned:
            slot.end_job()
            self._hand_back(slot, job)
        if slot.waiting:
            kept = []
            for waiting in slot.waiting:
                if (waiting.id, waiting.attempt) in returned:
                    self._hand_back(slot, waiting)
                else:
                    kept.append(waiting)  # not returned: the child may still run it
            slot.waiting = kept
            if not kept:
                slot.start_by = None
        slot.unreturned.clear()  # already handed back; the "returned" they owed is read
        self.changes += 1
        self._maybe_recycle(slot)

    def _hand_back_late(self, slot: Slot, now: float) -> None:
        """Past ``start_by`` the child starts no waiting job of its batch (see protocol.py):
        requeue them now, so they do not wait behind a long job.

        ``now`` must precede the read of the child's pipe that just ended: a "done" sent
        before ``start_by`` may let the child start the next job, and only once all of
        those are read is the first job not reported done the only one it may run.
        """
        if slot.start_by is not None and now >= slot.start_by:
            jobs = slot.take_waiting()
            # The child has not started them and will not: it owes a "returned" for them,
            # and until that is read the slot is not idle (see Slot).
            slot.unreturned.extend((job.id, job.attempt) for job in jobs)
            for job in jobs:
                self._hand_back(slot, job)

    def _hand_back(self, slot: Slot, job: ClaimedJob) -> None:
        """Requeue a claimed job that never started, without using an attempt (unless its
        lease was lost: then it is another worker's to run)."""
        if slot.lost and (job.id, job.attempt) in slot.lost:
            return
        self._record(
            slot,
            handed_back(job, batch_wait=self._settings.batch_wait, worker_id=self._worker_id),
        )
        self._work_due()  # it is due now
        logs.log("job.handed_back", job=job.id, attempt=job.attempt, queue=job.queue)

    def _record(self, slot: Slot, outcome: Outcome) -> None:
        """Queue ``outcome`` for the next write; it is counted (in the worker's stats and
        the slot's) once the store says whether it accepted it."""
        pending = self._pending
        pending.outcomes.append(outcome)
        pending.tallies[(outcome.job_id, outcome.attempt)] = slot.counts

    def _finish(self, slot: Slot, outcome: Outcome) -> None:
        """A run ended: queue its outcome for the next write and log it."""
        job = slot.end_job()
        self._record(slot, outcome)
        self.changes += 1
        # A slot just freed up: the next claim should not wait for a poll or a wake-up.
        self._work_due()
        ok = outcome.state is JobState.SUCCEEDED
        requeue = outcome.state is JobState.QUEUED and not (outcome.count_error or outcome.crashed)
        if not requeue:
            slot.runs += 1
        logs.log(
            event_of(outcome), "info" if ok or requeue else "warning", job=outcome.job_id,
            task=job.task if job else None, attempt=outcome.attempt, pid=slot.pid,
            duration_ms=int((time.monotonic() - slot.job_started) * 1000),
            reason=outcome.reason or None,
        )  # fmt: skip

    # -- limits ----------------------------------------------------------------------------
    def _enforce_limits(self, now: float) -> None:
        if self._stopping and not self._fast and now >= self._grace_end:
            self._end_running()  # the shutdown grace period is over
        for slot in self.live_slots():
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
                slot.terminate_job(Ending.TIMEOUT, now, self._settings.kill_grace)
            elif slot.ending is None and slot.cancel_by is not None and now >= slot.cancel_by:
                logs.log(
                    "job.cancel_stop", "warning", job=slot.job.id, task=slot.job.task,
                    attempt=slot.job.attempt, pid=slot.pid,
                    grace=self._settings.cancel_grace,
                )  # fmt: skip
                slot.terminate_job(Ending.CANCELLED, now, self._settings.kill_grace)

    def _end_running(self) -> None:
        """Kill every running job, once (a job already past its timeout still ends as a
        timeout; the others are requeued)."""
        if self._fast:
            return
        self._fast = True
        for slot in self.live_slots():
            if slot.job is not None:
                slot.kill_job(slot.ending or Ending.SHUTDOWN)
