"""One place in a job pool as the supervisor sees it: the child process that fills it and
the jobs it runs (:class:`Slot`), and why the supervisor ends a running job (:class:`Ending`).

The process itself (pipe, signals, memory) is a :class:`~offload.worker.process.ChildProcess`;
this module adds the job bookkeeping: the running job, the rest of its batch, its
deadlines and counters.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from offload.types import ClaimedJob
from offload.worker.config import Stats
from offload.worker.process import ChildProcess


class Ending(enum.Enum):
    """Why the supervisor itself is ending a running job (None: it is not)."""

    TIMEOUT = "timeout"  # overran its timeout: an error, retried by the task's policy
    LOST = "lost"  # the lease went to another worker: record nothing
    SHUTDOWN = "shutdown"  # the worker is stopping: requeue without using an attempt
    CANCELLED = "cancelled"  # asked to cancel, did not stop in time: ends cancelled


@dataclass
class Slot:
    """A child process and the job it runs (``job`` None: idle).

    A child may be handed a batch: ``job`` is the first job of it the child has not yet
    reported done (the one it runs), ``waiting`` the rest, in the order it runs them.
    Once the supervisor handed back the waiting jobs itself (past ``start_by``), the child
    still owes a ``returned`` message for them (``unreturned``): until it is read the slot
    is not idle, so a new batch can never be mistaken for the one the child returns.
    """

    index: int
    child: ChildProcess
    recycle_at: int
    #: Runs this child finished (it is recycled after ``recycle_at`` of them).
    runs: int = 0
    #: Its runs by how they ended, counted as the store accepted their outcomes (the
    #: process table's SERVED and FAILED).
    counts: Stats = field(default_factory=Stats)
    job: ClaimedJob | None = None
    #: Jobs of the batch after ``job`` (claimed, leased, not started).
    waiting: list[ClaimedJob] = field(default_factory=list)
    #: ``(id, attempt)`` of batch jobs the supervisor handed back before the child said it
    #: returned them: the child's ``returned`` message for them is still due.
    unreturned: list[tuple[str, int]] = field(default_factory=list)
    #: ``(id, attempt)`` of waiting jobs whose lease was lost (another worker owns them):
    #: the child is killed if it comes to start one, and none is handed back.
    lost: set[tuple[str, int]] = field(default_factory=set)
    #: The child starts no job of ``waiting`` at or after this monotonic time.
    start_by: float | None = None
    job_started: float = 0.0
    deadline: float | None = None
    kill_at: float | None = None
    ending: Ending | None = None
    #: Told to exit (recycling): it takes no more jobs.
    retiring: bool = False
    cancel_sent: bool = False
    #: Monotonic time by which the running job must have stopped after its cancel was
    #: asked (``cancel_grace``); then the supervisor stops the child.
    cancel_by: float | None = None

    @property
    def pid(self) -> int:
        """The child's process id (0 before it started)."""
        return self.child.pid

    @property
    def idle(self) -> bool:
        """Ready for a job now."""
        child = self.child
        return self.job is None and not (
            self.waiting or self.unreturned or self.retiring or child.eof or child.dead
        )

    def start_batch(self, jobs: list[ClaimedJob], now: float, start_by: float) -> None:
        """Note that ``jobs`` were sent to this child, to run in this order."""
        self.lost.clear()  # of the previous batch, which is over
        self.start_job(jobs[0], now)
        self.waiting = jobs[1:]
        self.start_by = start_by if self.waiting else None

    def next_job(self, now: float) -> ClaimedJob | None:
        """The child reported its job done and moves on to the next of its batch."""
        if not self.waiting:
            self.start_by = None
            return None
        job = self.waiting.pop(0)
        self.start_job(job, now)
        if not self.waiting:
            self.start_by = None
        return job

    def take_waiting(self) -> list[ClaimedJob]:
        """Forget the jobs of the batch the child will not start (they are handed back)."""
        jobs, self.waiting = self.waiting, []
        self.start_by = None
        return jobs

    def start_job(self, job: ClaimedJob, now: float) -> None:
        """Note that ``job`` was sent to this child at monotonic time ``now``."""
        self.job = job
        self.job_started = now
        self.deadline = now + job.timeout if job.timeout else None
        self.kill_at = None
        self.ending = None
        self.cancel_sent = False
        self.cancel_by = None

    def end_job(self) -> ClaimedJob | None:
        """Forget the running job (it ended one way or another) and return it."""
        job, self.job = self.job, None
        self.deadline = self.kill_at = self.cancel_by = None
        self.ending = None
        return job

    def terminate_job(self, ending: Ending, now: float, grace: float) -> None:
        """SIGTERM now and SIGKILL after ``grace`` seconds (see ``Pool._enforce_limits``)."""
        self.ending = ending
        self.kill_at = now + grace
        self.child.terminate()

    def kill_job(self, ending: Ending) -> None:
        """SIGKILL now: for a lost lease, a fast stop, or a timeout past its grace."""
        self.ending = ending
        self.kill_at = None
        self.child.kill()
