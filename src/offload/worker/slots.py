"""One child process as the supervisor sees it: its pipe, its job, its counters."""

from __future__ import annotations

import enum
import os
import signal
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from offload.types import ClaimedJob


class Ending(enum.Enum):
    """Why the supervisor itself is ending a running job (None: it is not)."""

    TIMEOUT = "timeout"  # overran its timeout: an error, retried by the task's policy
    LOST = "lost"  # the lease went to another worker: record nothing
    SHUTDOWN = "shutdown"  # the worker is stopping: requeue without using an attempt


@dataclass
class Slot:
    """A child process and the job it runs (``job`` None: idle).

    A child may be handed a batch: ``job`` is the first job of it the child has not yet
    reported done (the one it runs), ``waiting`` the rest, in the order it runs them.
    """

    index: int
    process: BaseProcess
    conn: Connection
    process_id: str
    started_at: float
    recycle_at: int
    served: int = 0
    failed: int = 0
    peak_rss: int = 0
    job: ClaimedJob | None = None
    #: Jobs of the batch after ``job`` (claimed, leased, not started).
    waiting: list[ClaimedJob] = field(default_factory=list)
    #: The child starts no job of ``waiting`` at or after this monotonic time.
    start_by: float | None = None
    job_started: float = 0.0
    deadline: float | None = None
    kill_at: float | None = None
    ending: Ending | None = None
    retiring: bool = False
    #: The supervisor signalled this child (timeout, lost lease, shutdown): its death is
    #: expected even if the job ended just before the signal landed.
    signalled: bool = False
    cancel_sent: bool = False
    eof: bool = False
    dead: bool = False

    @property
    def pid(self) -> int:
        """The child's process id (0 before it started)."""
        return self.process.pid or 0

    @property
    def idle(self) -> bool:
        """Ready for a job now."""
        return self.job is None and not (self.waiting or self.retiring or self.eof or self.dead)

    def start_batch(self, jobs: list[ClaimedJob], now: float, start_by: float) -> None:
        """Note that ``jobs`` were sent to this child, to run in this order."""
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

    def end_job(self) -> ClaimedJob | None:
        """Forget the running job (it ended one way or another) and return it."""
        job, self.job = self.job, None
        self.deadline = self.kill_at = None
        self.ending = None
        return job

    def signal(self, signum: int) -> None:
        """Signal the child and every process its job started (its process group); a child
        that already exited is not an error."""
        if self.dead or not self.pid:
            return
        self.signalled = True
        try:
            os.killpg(self.pid, signum)
            return
        except (ProcessLookupError, PermissionError):
            pass  # not a group leader yet (just forked), or the group is gone
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def terminate_job(self, ending: Ending, now: float, grace: float) -> None:
        """SIGTERM now and SIGKILL after ``grace`` seconds (see ``Supervisor._limits``)."""
        self.ending = ending
        self.kill_at = now + grace
        self.signal(signal.SIGTERM)

    def kill_job(self, ending: Ending) -> None:
        """SIGKILL now: for a lost lease, a fast stop, or a timeout past its grace."""
        self.ending = ending
        self.kill_at = None
        self.signal(signal.SIGKILL)
