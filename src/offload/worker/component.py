"""The parts a supervisor's loop drives: the :class:`Component` protocol, and
:class:`Shared`, what every component of one supervisor holds in common.

The supervisor (:mod:`offload.worker.supervisor`) is a small loop over components. Each
turn it

1. collects every component's :meth:`~Component.waitables` (plus its stop-signal socket);
2. computes the wait timeout: the earliest :meth:`~Component.next_at` of all components,
   at most ``MAX_WAIT`` ahead, and lets each :meth:`~Component.before_wait` spend or
   shorten it;
3. blocks in ``multiprocessing.connection.wait`` until something is ready or the timeout
   passes;
4. handles stop signals, then calls :meth:`~Component.tick` on each component in order,
   passing what the wait returned; any exception is logged and the loop goes on.

**The rule for next_at.** Every moment a component reports must move into the future once
the component has acted on it (or stop being reported), or the loop would spin: a
deadline already acted on, a claim that cannot happen (the pool is full, the store is
backing off), a respawn while stopping are left out. A moment already past means "now".

Lifecycle: :meth:`~Component.start` once before the first turn; :meth:`~Component.stop`
with ``fast=False`` when the worker starts stopping (SIGTERM, a drain done) and with
``fast=True`` when running work must end now (a second signal, SIGINT, exit); the loop
ends once stopping and no component is :meth:`~Component.busy`; then
:meth:`~Component.close` on each, in the supervisor's closing order.

**Adding a component** (a service host; see :mod:`.scheduler`): write a class that subclasses
:class:`Component` (for the defaults) and implements :meth:`~Component.tick` and whichever
hooks it needs; build it in ``Supervisor.__init__`` from :class:`Shared` and the
components it talks to (pass callbacks rather than the supervisor); add it to
``Supervisor._components`` where its turn should come and to ``Supervisor._closing``.
A component that forks must have its children close :meth:`Supervisor.fds_for_children`,
and report its own descriptors in :meth:`~Component.fds` so other children close them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from offload.worker.config import Stats, WorkerConfig
from offload.worker.writes import Recorder, StoreGuard

if TYPE_CHECKING:
    from offload.app import Offload
    from offload.settings import Settings
    from offload.store.base import Store


class Component(Protocol):
    """One part of a supervisor's work, driven by its loop (see the module docstring).

    Only :meth:`tick` is required; subclass this protocol to inherit the other defaults.
    """

    def start(self) -> None:
        """Called once, before the first turn (fork children, open a waiter)."""
        return None

    def waitables(self) -> Iterable[Any]:
        """What the loop should also wait on this turn: connections, process sentinels,
        file descriptors (anything ``multiprocessing.connection.wait`` accepts)."""
        return ()

    def next_at(self) -> float | None:
        """The ``time.monotonic()`` moment this component next needs a turn even if
        nothing it waits on is ready; None if it has nothing due."""
        return None

    def before_wait(self, timeout: float) -> float:
        """Called right before the loop blocks for ``timeout`` seconds; returns the
        timeout left. Only for something that cannot join the wait and must block itself
        (PostgreSQL's LISTEN connection); everything else returns ``timeout``."""
        return timeout

    def tick(self, now: float, ready: Sequence[Any]) -> None:
        """Do what is due. ``now`` is ``time.monotonic()`` just before the call; ``ready``
        what the wait returned (of every component: check membership)."""
        ...

    def stop(self, fast: bool) -> None:
        """The worker is stopping: ``fast=False`` first (wind down: no new work), then
        ``fast=True`` if running work must end now (both, in that order, on a fast stop)."""
        return None

    def busy(self) -> bool:
        """True while running work must not be abandoned (the loop keeps turning)."""
        return False

    def fds(self) -> list[int]:
        """Descriptors this component holds that a forked child must close."""
        return []

    def close(self) -> None:
        """Called once, after the last turn: finish up and release resources."""
        return None


@dataclass(frozen=True)
class Shared:
    """What every component of one supervisor holds in common."""

    app: Offload
    #: The app's settings when the supervisor was built.
    settings: Settings
    config: WorkerConfig
    worker_id: str
    guard: StoreGuard
    #: Pending writes, and the one-transaction flush (and claim) that sends them.
    recorder: Recorder
    stats: Stats

    @property
    def store(self) -> Store:
        """The app's store (reopened after each fork; see the supervisor's docstring)."""
        return self.app.store
