"""The light, shared pieces of a worker: what it runs (:class:`WorkerConfig`), what it did
(:class:`Stats`, :class:`DrainSummary`), and how it names itself and its drain lock.

This module imports neither psutil nor multiprocessing, so code that only needs a name
from here (the CLI, a drain's summary, a test) does not pay for the supervisor's imports.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from offload.errors import ConfigError
from offload.histogram import RunHistogram
from offload.settings import check_identifier
from offload.types import JobState, Outcome

if TYPE_CHECKING:
    from offload.app import Offload


@dataclass(frozen=True)
class WorkerConfig:
    """What a supervisor runs: its queues and pool size, and for a drain when to stop.

    ``kind`` is the process-table kind (``supervisor`` or ``drain``). With
    ``exit_when_idle`` the supervisor stops once a claim finds nothing and no job runs.
    ``budget`` (seconds) stops it, as SIGTERM would, that long after it started, with or
    without ``exit_when_idle``; ``max_jobs`` stops claiming after that many jobs.
    ``schedules`` False leaves the app's periodic schedules to other workers.
    """

    queues: tuple[str, ...]
    concurrency: int
    kind: str = "supervisor"
    exit_when_idle: bool = False
    budget: float | None = None
    max_jobs: int | None = None
    lock_name: str | None = None
    #: Stop once no job ran and a claim found nothing for this many seconds (the serving
    #: locks are let go first; see :mod:`offload.worker.serving`). None: not on idle.
    idle_exit: float | None = None
    #: A descriptor holding the starter's lock (``autostart``, ``offload ensure``), closed
    #: once this worker holds its serving locks, so no second one is started meanwhile.
    started_by_fd: int | None = None
    #: The services this supervisor hosts, by name: None for every one the app
    #: registers, empty for none (see :mod:`offload.services.host`).
    services: tuple[str, ...] | None = None
    #: Fire the app's periodic schedules (``@app.periodic``); see
    #: :mod:`offload.worker.scheduler`.
    schedules: bool = True

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
        if self.idle_exit is not None and not self.idle_exit > 0:
            raise ConfigError(f"expected idle_exit to be positive seconds, got {self.idle_exit!r}")
        if self.max_jobs is not None and self.max_jobs < 1:
            raise ConfigError(f"expected max_jobs to be a positive int, got {self.max_jobs!r}")


@dataclass
class Stats:
    """Runs by how they ended, counted once the store accepted (or refused) the outcome.

    A *run* is one attempt that ended in this worker: the job's code returned or raised,
    timed out, or its child process died under it. Each run counts once, in exactly one of
    ``succeeded``, ``retried``, ``failed`` or ``refused``:

    * ``succeeded``: the job succeeded;
    * ``retried``: it raised, timed out or crashed and was queued to run again;
    * ``failed``: it ended for good without succeeding: failed (no attempt left),
      quarantined (too many crashes) or cancelled; a claimed job whose row could not be
      sent to a child (a ``DispatchError``) counts here too;
    * ``refused``: the store refused the outcome, because the lease ran out meanwhile
      and the job was rescued (it is another run now), or the run was killed here on
      learning that its lease was lost. Such a run is neither a success nor a failure.

    ``requeued`` counts jobs put back without using an attempt (handed back unstarted from
    a batch, or cut short by a shutdown): they are not runs. An outcome not yet written
    (or never written: the store stayed down) is not counted.

    ``run_seconds`` counts the run times the children reported (published in the
    process row for ``/metrics``; see :mod:`offload.histogram`).
    """

    run_seconds: RunHistogram = field(default_factory=RunHistogram)
    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    refused: int = 0
    requeued: int = 0

    def note(self, outcome: Outcome, accepted: bool) -> None:
        """Count one outcome the store accepted (or refused: ``accepted`` False)."""
        state = outcome.state
        if state is JobState.QUEUED and not (outcome.count_error or outcome.crashed):
            if accepted:  # a refused requeue ran nothing and requeued nothing here
                self.requeued += 1
        elif not accepted:
            self.refused += 1
        elif state is JobState.SUCCEEDED:
            self.succeeded += 1
        elif state is JobState.QUEUED:
            self.retried += 1
        else:
            self.failed += 1

    @property
    def run(self) -> int:
        """Runs that ended: ``succeeded + retried + failed + refused``."""
        return self.succeeded + self.retried + self.failed + self.refused

    @property
    def served(self) -> int:
        """Runs whose outcome the store accepted (the process table's SERVED)."""
        return self.succeeded + self.retried + self.failed

    @property
    def errors(self) -> int:
        """Accepted runs that did not succeed, retried or not (the process table's FAILED)."""
        return self.retried + self.failed


@dataclass(frozen=True)
class DrainSummary:
    """What one drain did (see :class:`Stats` for what each count means).

    >>> DrainSummary(runs=4, succeeded=2, retried=1, failed=1, refused=0, seconds=0.5).line()
    'drain: 4 runs: 2 succeeded, 1 retried, 1 failed, 0 refused in 0.5 s'
    """

    runs: int
    succeeded: int
    retried: int
    failed: int
    refused: int
    seconds: float
    #: True when another drain of the same queues held the lock, so this one did nothing.
    locked_out: bool = False
    lock_name: str = ""

    @classmethod
    def of(cls, stats: Stats, seconds: float, lock_name: str = "") -> DrainSummary:
        """The summary of a drain that ran with these ``stats``."""
        return cls(
            stats.run, stats.succeeded, stats.retried, stats.failed, stats.refused, seconds,
            lock_name=lock_name,
        )  # fmt: skip

    def line(self) -> str:
        """The one-line summary printed by ``offload drain``."""
        if self.locked_out:
            return f"drain: another drain holds the lock {self.lock_name}; nothing to do"
        runs = "1 run" if self.runs == 1 else f"{self.runs} runs"
        return (
            f"drain: {runs}: {self.succeeded} succeeded, {self.retried} retried, "
            f"{self.failed} failed, {self.refused} refused in {self.seconds:.1f} s"
        )


def default_queues(app: Offload) -> tuple[str, ...]:
    """The queues of the app's registered tasks (``default`` if it has none)."""
    return tuple(sorted({t.options.queue for t in app.tasks.values()})) or ("default",)


def host_name(app: Offload) -> str:
    """The host this worker reports: ``settings.hostname``, else the machine's name."""
    return app.settings.hostname or socket.gethostname()


def new_worker_id(host: str | None = None) -> str:
    """A process-table id: host, pid and a random suffix (pids are reused)."""
    return f"{host or socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def drain_lock_name(queues: Sequence[str]) -> str:
    """The store lock one drain of these queues holds: ``drain:a,b`` (sorted)."""
    return "drain:" + ",".join(sorted(queues))
