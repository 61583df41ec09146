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
from dataclasses import dataclass
from typing import TYPE_CHECKING

from offload.errors import ConfigError
from offload.settings import check_identifier

if TYPE_CHECKING:
    from offload.app import Offload


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


@dataclass(frozen=True)
class DrainSummary:
    """What one drain did.

    >>> DrainSummary(jobs_run=3, succeeded=2, failed=1, seconds=0.5).line()
    'drain: 3 jobs run, 2 succeeded, 1 failed in 0.5 s'
    """

    jobs_run: int
    succeeded: int
    failed: int
    seconds: float
    #: True when another drain of the same queues held the lock, so this one did nothing.
    locked_out: bool = False
    lock_name: str = ""

    def line(self) -> str:
        """The one-line summary printed by ``offload drain``."""
        if self.locked_out:
            return f"drain: another drain holds the lock {self.lock_name}; nothing to do"
        return (
            f"drain: {self.jobs_run} jobs run, {self.succeeded} succeeded, "
            f"{self.failed} failed in {self.seconds:.1f} s"
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
