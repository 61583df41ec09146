"""Autostart: get an enqueued job run without a daemon already running.

``Offload(..., autostart=...)`` (``OFFLOAD_AUTOSTART``) says what an enqueue does once the
job is stored (every enqueue goes through :func:`after_enqueue`: ``enqueue``,
``enqueue_many``, their async forms, ``after_response``):

* ``off`` (the default): nothing; a worker pool or a cron drain runs the jobs;
* ``spawn``: if no live worker or drain on this host serves the job's queue, start a
  detached drain that exits once idle (:mod:`offload.autostart.spawn`); the check is one
  ``flock`` call (:mod:`offload.autostart.locks`);
* ``ping:URL[,URL]``: send a signed wake-up to each URL from a background thread
  (:mod:`offload.autostart.ping`); ``offload wake-listener`` there starts a drain
  (:mod:`offload.autostart.listener`).

Nothing here raises into the enqueue: a failure is logged and the job stays queued. The
drain needs the app's ``module:attribute``: ``autostart_app``, else ``OFFLOAD_APP``; with
neither (a task defined in ``__main__``), the first enqueue warns once and nothing starts.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

from offload import logs
from offload.errors import ConfigWarning
from offload.settings import Settings

if TYPE_CHECKING:
    from offload.app import Offload
    from offload.autostart.ping import Pinger
    from offload.autostart.spawn import Spawner
    from offload.types import NewJob

__all__ = ["after_enqueue", "app_spec"]


def app_spec(settings: Settings) -> str | None:
    """The ``module:attribute`` a started process imports, if one is known."""
    spec = settings.autostart_app or os.environ.get("OFFLOAD_APP") or None
    if spec is None or spec.partition(":")[0] == "__main__":
        return None
    return spec


class _Hook:
    """What one app does after its enqueues, for the settings it had when built."""

    __slots__ = ("pinger", "settings", "spawner")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.spawner: Spawner | None = None
        self.pinger: Pinger | None = None
        if settings.autostart == "spawn":
            spec = app_spec(settings)
            if spec is None:
                _warn_no_app()
            else:
                from offload.autostart.spawn import Spawner

                self.spawner = Spawner(settings, spec)
        elif settings.autostart.startswith("ping:"):
            from offload.autostart.ping import Pinger

            self.pinger = Pinger(settings)


_hooks: weakref.WeakKeyDictionary[Offload, _Hook] = weakref.WeakKeyDictionary()
_hooks_lock = threading.Lock()


def after_enqueue(app: Offload, jobs: Sequence[NewJob]) -> None:
    """The jobs are stored: start or wake what serves their queues (never raises)."""
    try:
        hook = _hooks.get(app)
        if hook is None or hook.settings is not app.settings:
            with _hooks_lock:
                hook = _hooks.get(app)
                if hook is None or hook.settings is not app.settings:
                    hook = _hooks[app] = _Hook(app.settings)
        if hook.spawner is not None:
            hook.spawner.ensure({job.queue for job in jobs})
        elif hook.pinger is not None:
            hook.pinger.wake({job.queue for job in jobs})
    except Exception as exc:  # the job is stored: autostart must never fail the enqueue
        logs.log(
            "autostart.error", "error", mode=app.settings.autostart,
            error=f"{type(exc).__name__}: {exc}",
            reason="the job stays queued for any worker or drain",
        )  # fmt: skip


def _warn_no_app() -> None:
    message = (
        "autostart='spawn' cannot start a drain: it needs the app as 'module:attribute' "
        "(set OFFLOAD_APP or Offload(..., autostart_app='myproject.jobs:app')); a task "
        "defined in __main__ cannot be found by another process. Jobs stay queued for "
        "a worker or a cron drain"
    )
    logs.log("autostart.no_app", "warning", reason=message)
    warnings.warn(message, ConfigWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """The ``stacklevel`` that names the first frame outside offload (the enqueue call)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    level = 1
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level
