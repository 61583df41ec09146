"""The job pool: a supervisor's child processes that run jobs, as one loop component.

It forks ``concurrency`` children and keeps them: it reads what they report (progress,
log lines, saved values, outcomes) into the pending writes, deals out the jobs a claim
brings (a small batch per child while jobs are tiny: :mod:`offload.worker.batching`),
hands back batch jobs that waited too long, enforces timeouts (SIGTERM, then SIGKILL after
``kill_grace``) and the shutdown grace, settles the job of a child that died
(:mod:`offload.worker.endings`, on :mod:`offload.retry`'s policy), and replaces children
that die or are recycled (after a random number of jobs, or once over
``child_memory_limit``).

The pool never calls the store: what it learns waits in the shared
:class:`~offload.worker.writes.Recorder` for the claimer's next transaction.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from offload import logs
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
        """The slots whose child has not been reaped, retiring children included."""
        live = [s for s in self.slots if s is not None and not s.child.dead]
        return live + [s for s in self._retired if not s.child.dead] if self._retired else live

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
        jobs (highest priority, oldest) start first, one on each child."""
        start_by = time.monotonic() + self._settings.batch_wait
        for index, slot in enumerate(free):
            batch = jobs[index :: len(free)]
            if batch:
                self._dispatch(slot, batch, start_by)

    # -- children --------------------------------------------------------------------------
    def _spawn(self, index: int) -> None:
        child = fork(
            self._shared.app, child_main, worker_id=self._worker_id,
            name=f"offload-child-{index}", close_fds=self._fds_for_children(),
        )  # fmt: skip
        recycle_at = random.randint(self._settings.recycle_min, self._settings.recycle_max)
        self.slots[index] = Slot(index=index, child=child, recycle_at=recycle_at)
        self._respawn_at.pop(index, None)
        self.started += 1
        logs.log("child.started", worker=self._worker_id, pid=child.pid, slot=index)

    def _respawn(self, now: float) -> None:
        if self._stopping:
            return
        for index, at in list(self._respawn_at.items()):
            if now >= at:
                self._spawn(index)

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
        if not slot.child.send(message):
            # The child died between its last message and this one; it never saw the jobs.
            slot.ending = Ending.SHUTDOWN

    def _read(self, slot: Slot) -> None:
        """Handle every message the child has sent so far."""
        # Taken before reading: every "done" the child sent before this moment is read
        # below, which is what handing back a batch's late jobs relies on.
        now = time.monotonic()
        child = slot.child
        try:
            while child.has_message():
                self._on_message(slot, child.receive())
        except (EOFError, OSError):
            child.eof = True  # the child is exiting; its sentinel says when it is gone
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
                slot.child.note_peak_rss(int(message.get("peak_rss", 0)))
                self._finish(slot, outcome)
                self._sizer.note(job.queue, message.get("seconds"))
                self._spawn_failures = 0
                if slot.waiting:
                    slot.next_job(time.monotonic())
                self._maybe_recycle(slot)

    def _maybe_recycle(self, slot: Slot) -> None:
        # A retiring child's late "returned" must not recycle it again: a second
        # replacement would orphan the first and register its pipe twice, wedging the loop.
        if self._stopping or slot.retiring or slot.job is not None:
            return
        limit = self._settings.child_memory_limit
        rss = slot.child.rss() if limit else 0
        why = None
        if slot.served >= slot.recycle_at:
            why = f"served {slot.served} jobs"
        elif limit and rss > limit:
            why = f"RSS {rss} bytes is over child_memory_limit {limit}"
        if why is None:
            return
        slot.retiring = True
        logs.log("child.recycle", worker=self._worker_id, pid=slot.pid, reason=why)
        slot.child.send({"op": "stop"})
        # Its replacement starts now, while it exits: the slot is not left empty for the
        # time an interpreter takes to shut down.
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
            )  # fmt: skip
            if outcome is None:
                slot.end_job()
            else:
                self._finish(slot, outcome)
        # The rest of its batch never started: requeued, no crash counted for them.
        for job in slot.take_waiting():
            self._hand_back(job)
        child.close()
        self._pending.stopped.append(child.process_id)
        expected = slot.retiring or child.signalled or self._stopping
        logs.log(
            "child.exited", "info" if expected else "warning", worker=self._worker_id,
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

    # -- jobs ------------------------------------------------------------------------------
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
        self._pending.outcomes.append(
            handed_back(job, batch_wait=self._settings.batch_wait, worker_id=self._worker_id)
        )
        self._shared.stats.requeued += 1
        self._work_due()  # it is due now
        logs.log("job.handed_back", job=job.id, attempt=job.attempt, queue=job.queue)

    def _finish(self, slot: Slot, outcome: Outcome) -> None:
        """A run ended: queue its outcome for the next write and log it."""
        job = slot.end_job()
        self._pending.outcomes.append(outcome)
        # A slot just freed up: the next claim should not wait for a poll or a wake-up.
        self._work_due()
        stats = self._shared.stats
        ok = outcome.state is JobState.SUCCEEDED
        requeue = outcome.state is JobState.QUEUED and not (outcome.count_error or outcome.crashed)
        if requeue:
            stats.requeued += 1
        else:
            slot.served += 1
            slot.failed += 0 if ok else 1
            stats.run += 1
            stats.succeeded += 1 if ok else 0
            stats.failed += 0 if ok else 1
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

    def _end_running(self) -> None:
        """Kill every running job, once (a job already past its timeout still ends as a
        timeout; the others are requeued)."""
        if self._fast:
            return
        self._fast = True
        for slot in self.live_slots():
            if slot.job is not None:
                slot.kill_job(slot.ending or Ending.SHUTDOWN)
