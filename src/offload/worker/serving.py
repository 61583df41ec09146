"""Serving: the host-local locks that tell ``autostart`` and ``offload ensure`` this
worker is alive (see :mod:`offload.autostart.locks`), and a drain's idle exit.

From its start until it begins to stop, a worker holds a shared lock per queue it serves
(and a pool, one for its queue set), then closes the starter's lock it was handed, if
any. It lets go of them as soon as it starts stopping, so a worker that is shutting down
no longer counts as alive.

With ``idle_exit`` (an autostarted drain) it stops the worker once no job ran for that
long (the claimer claims whatever is due as soon as a child is free, so a pool idle that
long has found nothing, or cannot reach the store: exiting then is right too), in two
steps, so that no job is left behind: first it lets go
of its locks, and keeps claiming a little longer than a ``ping:`` sender trusts an earlier
answer (:data:`offload.autostart.locks.QUIET`); then it claims once more and, if that
finds nothing, stops. An enqueuer checks after its commit, so a job is either claimed
here or its enqueuer sees no lock and starts a new drain. Work arriving during the first
step takes the locks back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

from offload import logs
from offload.autostart import locks
from offload.worker.component import Component, Shared

#: How long a drain goes on claiming after letting go of its locks.
_LINGER = locks.QUIET + 0.5


class Serving(Component):
    """See the module docstring. ``idle()`` says no job runs; ``claim_again()`` makes the
    next turn claim;
    ``on_idle(why)`` stops the worker."""

    def __init__(
        self,
        shared: Shared,
        *,
        idle: Callable[[], bool],
        claim_again: Callable[[], None],
        on_idle: Callable[[str], None],
    ) -> None:
        self._shared = shared
        self._config = shared.config
        self._idle = idle
        self._claim_again = claim_again
        self._on_idle = on_idle
        self._folder: str | None = None
        self._paths: list[str] = []
        self._fds: list[int] = []
        self._started_by = shared.config.started_by_fd
        self._pid_file: str | None = None
        self._stopping = False
        self._idle_since: float | None = None
        self._linger_until: float | None = None
        self._last_claim = False

    def start(self) -> None:
        config = self._config
        try:
            self._folder = locks.lock_dir(self._shared.settings)
            self._paths = [locks.serve_lock(self._folder, q) for q in config.queues]
            if config.kind == "supervisor":
                self._paths.append(locks.pool_lock(self._folder, config.queues))
            self._fds = locks.hold_shared(self._paths)
            self._pid_file = locks.write_pid_file(self._folder, config.kind, config.queues)
        except (OSError, locks.LockDirError) as exc:
            logs.log(
                "worker.serving_unknown", "warning", worker=self._shared.worker_id,
                error=str(exc), reason="autostart and ensure on this host cannot see this worker",
            )  # fmt: skip
        self._close_started_by()

    def fds(self) -> list[int]:
        started_by = [] if self._started_by is None else [self._started_by]
        return [*self._fds, *started_by]

    def next_at(self) -> float | None:
        idle_exit = self._config.idle_exit
        if idle_exit is None or self._stopping:
            return None
        if self._linger_until is not None:
            return self._linger_until
        return None if self._idle_since is None else self._idle_since + idle_exit

    def tick(self, now: float, ready: Sequence[Any]) -> None:
        idle_exit = self._config.idle_exit
        if idle_exit is None or self._stopping:
            return
        if not self._idle():
            self._idle_since = None
            self._last_claim = False
            if self._linger_until is not None:  # work came back: serve openly again
                self._linger_until = None
                self._take()
            return
        if self._idle_since is None:
            self._idle_since = now
        if self._linger_until is None:
            if now - self._idle_since >= idle_exit:
                self._let_go()
                self._linger_until = now + _LINGER
        elif now >= self._linger_until:
            if not self._last_claim:
                self._last_claim = True
                self._claim_again()  # one more claim, after every enqueuer's cache expired
            else:
                self._on_idle(f"idle for {idle_exit:g} s")

    def stop(self, fast: bool) -> None:
        self._stopping = True
        self._let_go()

    def close(self) -> None:
        self._let_go()
        self._close_started_by()
        if self._pid_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._pid_file)
            self._pid_file = None

    def _take(self) -> None:
        if self._paths and not self._fds:
            try:
                self._fds = locks.hold_shared(self._paths)
            except OSError as exc:
                logs.log("worker.serving_unknown", "warning", error=str(exc))

    def _let_go(self) -> None:
        fds, self._fds = self._fds, []
        locks.release(fds)

    def _close_started_by(self) -> None:
        if self._started_by is not None:
            locks.release([self._started_by])
            self._started_by = None
