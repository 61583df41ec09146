"""Workers: a supervisor process and child processes that run jobs.

>>> from offload.worker import run_worker, run_drain
>>> run_worker(app, concurrency=4, queues=["default", "mail"])   # until SIGTERM
>>> run_drain(app, budget=55).line()                              # cron: until empty
'drain: 12 runs: 12 succeeded, 0 retried, 0 failed, 0 refused in 3.1 s'

The supervisor runs no job code; see :mod:`offload.worker.supervisor` for its loop and
why children are forked, and :mod:`offload.worker.component` for the parts it drives.

Importing this package is cheap: :class:`Supervisor` and :func:`run_drain` are loaded on
first use (module ``__getattr__``), so ``from offload.worker import WorkerConfig`` imports
neither psutil nor multiprocessing.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from offload.worker.config import (
    DrainSummary,
    Stats,
    WorkerConfig,
    default_queues,
    drain_lock_name,
)

if TYPE_CHECKING:
    from offload.app import Offload
    from offload.worker.drain import run_drain
    from offload.worker.supervisor import Supervisor

__all__ = [
    "DrainSummary",
    "Stats",
    "Supervisor",
    "WorkerConfig",
    "drain_lock_name",
    "run_drain",
    "run_worker",
]

#: Public names loaded on first use, and the module each comes from. Lazy because both
#: modules import the supervisor, hence psutil and multiprocessing.
_LAZY = {
    "run_drain": "offload.worker.drain",
    "Supervisor": "offload.worker.supervisor",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def run_worker(
    app: Offload,
    *,
    concurrency: int | None = None,
    queues: Sequence[str] | None = None,
    started_by_fd: int | None = None,
    schedules: bool = True,
) -> Stats:
    """Serve ``queues`` (default: every queue the app's tasks use) with ``concurrency``
    child processes (default ``settings.concurrency``) until SIGTERM or SIGINT.

    SIGTERM lets running jobs finish within ``settings.shutdown_grace``; a second SIGTERM
    or a SIGINT stops at once. Jobs cut short are requeued without using up an attempt.

    The app's periodic schedules are fired too, unless ``schedules`` is False.

    ``started_by_fd`` is a starter's lock (``offload ensure``), closed once the pool holds
    its serving locks (see :mod:`offload.autostart.locks`).

    >>> run_worker(app, concurrency=2, queues=["default"])
    """
    # Lazy: the supervisor imports psutil and multiprocessing, which importing this
    # package must not.
    from offload.worker.supervisor import Supervisor

    config = WorkerConfig(
        queues=tuple(queues) if queues else default_queues(app),
        concurrency=concurrency or app.settings.concurrency,
        started_by_fd=started_by_fd,
        schedules=schedules,
    )
    # Refuse at once (SchemaError) a schema this code does not know, rather than start a
    # pool whose every store call would fail and be retried.
    app.store.schema_check()
    return Supervisor(app, config).run()
