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

from offload.errors import ConfigError
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
    "run_services",
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
    services: Sequence[str] | None = None,
    schedules: bool = True,
) -> Stats:
    """Serve ``queues`` (default: every queue the app's tasks use) with ``concurrency``
    child processes (default ``settings.concurrency``) until SIGTERM or SIGINT.

    SIGTERM lets running jobs finish within ``settings.shutdown_grace``; a second SIGTERM
    or a SIGINT stops at once. Jobs cut short are requeued without using up an attempt.

    The app's periodic schedules are fired too, unless ``schedules`` is False.

    ``started_by_fd`` is a starter's lock (``offload ensure``), closed once the pool holds
    its serving locks (see :mod:`offload.autostart.locks`).

    ``services`` names the services it hosts (None: every one the app registers; empty:
    none); each runs in a process of its own (see :mod:`offload.services`).

    >>> run_worker(app, concurrency=2, queues=["default"])
    """
    # Lazy: the supervisor imports psutil and multiprocessing, which importing this
    # package must not.
    from offload.worker.supervisor import Supervisor

    config = WorkerConfig(
        queues=tuple(queues) if queues else default_queues(app),
        concurrency=concurrency or app.settings.concurrency,
        started_by_fd=started_by_fd,
        services=None if services is None else tuple(services),
        schedules=schedules,
    )
    # Refuse at once (SchemaError) a schema this code does not know, rather than start a
    # pool whose every store call would fail and be retried.
    app.store.schema_check()
    return Supervisor(app, config).run()


def run_services(
    app: Offload, names: Sequence[str] | None = None, *, concurrency: int = 1
) -> Stats:
    """Run services alone (``offload service``): ``names`` (None: every one the app
    registers) under a supervisor whose pool of ``concurrency`` children serves only the
    queues of those services' stored sends, until SIGTERM or SIGINT.

    >>> run_services(app, ["cache"])
    """
    from offload.services.host import select
    from offload.worker.supervisor import Supervisor

    definitions = select(app, names)
    if not definitions:
        raise ConfigError("the app registers no service, so there is nothing to run")
    queues = tuple(sorted({d.options.queue for d in definitions}))
    config = WorkerConfig(
        queues=queues,
        concurrency=concurrency,
        services=tuple(d.name for d in definitions),
        schedules=False,  # schedules are fired by the pools and drains of the app
    )
    app.store.schema_check()
    return Supervisor(app, config).run()
