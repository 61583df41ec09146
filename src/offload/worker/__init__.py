"""Workers: a supervisor process and child processes that run jobs.

>>> from offload.worker import run_worker, run_drain
>>> run_worker(app, concurrency=4, queues=["default", "mail"])   # until SIGTERM
>>> run_drain(app, budget=55).line()                              # cron: until empty
'drain: 12 jobs run, 12 succeeded, 0 failed in 3.1 s'

The supervisor runs no job code; see :mod:`offload.worker.supervisor` for how it claims,
dispatches, heartbeats, enforces limits and stops, and why children are forked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from offload.worker.drain import DrainSummary, drain_lock_name, run_drain
from offload.worker.supervisor import Stats, Supervisor, WorkerConfig, default_queues

if TYPE_CHECKING:
    from offload.app import Offload

__all__ = [
    "DrainSummary",
    "Stats",
    "Supervisor",
    "WorkerConfig",
    "drain_lock_name",
    "run_drain",
    "run_worker",
]


def run_worker(
    app: Offload,
    *,
    concurrency: int | None = None,
    queues: Sequence[str] | None = None,
) -> Stats:
    """Serve ``queues`` (default: every queue the app's tasks use) with ``concurrency``
    child processes (default ``settings.concurrency``) until SIGTERM or SIGINT.

    SIGTERM lets running jobs finish within ``settings.shutdown_grace``; a second SIGTERM
    or a SIGINT stops at once. Jobs cut short are requeued without using up an attempt.

    >>> run_worker(app, concurrency=2, queues=["default"])
    """
    config = WorkerConfig(
        queues=tuple(queues) if queues else default_queues(app),
        concurrency=concurrency or app.settings.concurrency,
    )
    # Refuse at once (SchemaError) a schema this code does not know, rather than start a
    # pool whose every store call would fail and be retried.
    app.store.schema_check()
    return Supervisor(app, config).run()
