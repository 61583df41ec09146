"""The cron drain: run due jobs until the queues are empty or a budget is spent, then exit.

A drain is a supervisor in exit-when-idle mode, so timeouts, crashes and recycling behave
exactly as in a worker pool. A store lock named ``drain:<queues>`` keeps one drain per
queue set: a cron entry that fires every minute never stacks drains on a slow minute.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from offload import logs
from offload.worker.config import (
    DrainSummary,
    WorkerConfig,
    default_queues,
    drain_lock_name,
    host_name,
    new_worker_id,
)
from offload.worker.supervisor import Supervisor

if TYPE_CHECKING:
    from offload.app import Offload

__all__ = ["DrainSummary", "drain_lock_name", "run_drain"]


def run_drain(
    app: Offload,
    *,
    queues: Sequence[str] | None = None,
    budget: float | None = None,
    max_jobs: int | None = None,
    concurrency: int | None = None,
    idle_exit: float | None = None,
    started_by_fd: int | None = None,
    schedules: bool = True,
) -> DrainSummary:
    """Run due jobs of ``queues`` in child processes until none is left, ``budget``
    seconds have passed (running jobs then get ``shutdown_grace`` to finish) or
    ``max_jobs`` were claimed. Returns at once if another drain of the same queues runs.

    Periodic schedules that are due are fired first (unless ``schedules`` is False),
    so their jobs run in this drain: a store served by a cron drain alone still gets its
    periodic jobs, one per fire; fires that fell due between two drains are caught up on
    by each schedule's policy.

    With ``idle_exit`` it stays until nothing ran for that many seconds. A drain started
    by autostart (``started_by_fd``, the starter's lock) takes no store lock: the
    host-local serving locks already keep it to one per queue (see
    :mod:`offload.autostart`).

    >>> run_drain(app, queues=["default"], budget=55).line()
    'drain: 12 runs: 12 succeeded, 0 retried, 0 failed, 0 refused in 3.1 s'
    """
    began = time.monotonic()
    chosen = tuple(queues) if queues else default_queues(app)
    name = drain_lock_name(chosen)
    worker_id = new_worker_id(host_name(app))
    autostarted = started_by_fd is not None
    if not autostarted and not app.store.lock_acquire(name, worker_id, app.settings.lease):
        logs.log("drain.locked", lock=name, reason="another drain holds the lock")
        return DrainSummary(
            0, 0, 0, 0, 0, time.monotonic() - began, locked_out=True, lock_name=name
        )
    config = WorkerConfig(
        queues=chosen, concurrency=concurrency or app.settings.concurrency, kind="drain",
        exit_when_idle=True, budget=budget, max_jobs=max_jobs,
        lock_name=None if autostarted else name, idle_exit=idle_exit,
        started_by_fd=started_by_fd, schedules=schedules,
        services=(),  # a drain exits once idle: services belong to pools
    )  # fmt: skip
    stats = Supervisor(app, config, worker_id=worker_id).run()
    return DrainSummary.of(stats, time.monotonic() - began, lock_name=name)
