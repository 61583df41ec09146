"""The supervisor: one loop over the components that claim jobs, run them in child
processes and record what they report.

It runs no job code. One thread, one loop, blocked in ``multiprocessing.connection.wait``
on what its components wait on (the children's pipes and exit sentinels, the store's
wake-up socket) and a signal socket, until the earliest moment a component asked for.
Each turn it handles stop signals, then ticks its components in order:

* the job pool (:mod:`offload.worker.pool`) reads what the children sent, settles dead
  children, enforces timeouts and the shutdown grace, replaces children;
* maintenance (:mod:`offload.worker.maintenance`) heartbeats: renews leases, writes the
  process table, renews a drain's lock, rescues expired leases, says which tasks have
  waiting jobs that no live worker registers;
* the scheduler (:mod:`offload.worker.scheduler`) records the fires of periodic
  schedules that are due, each with its job, once across every supervisor;
* the claimer (:mod:`offload.worker.claims`) writes everything pending in one
  ``job_write`` transaction together with a claim of as many jobs as there are idle
  children (never more: no prefetch);
* the service host (:mod:`offload.services.host`, only when the app registers services)
  runs each service in a process of its own, restarts and recycles it, and registers its
  address in the process table.

See :mod:`offload.worker.component` for the protocol they follow and how to add one.

**Start method: fork, with no store connection open.** Children are forked from the
supervisor, so they inherit the imported app without pickling it and without the app
needing an importable ``module:attribute`` (a script may call :func:`run_worker` on an app
defined in ``__main__``). Fork is only safe if nothing is shared that must not be: the
supervisor closes its store (``app.close()``) right before every fork, so a child never
holds, let alone uses, a database connection opened by its parent; the supervisor keeps
no threads, so no lock can be copied mid-operation; and each child closes the pipe ends of
its siblings and the supervisor's sockets. The store reopens lazily on the supervisor's
next call, which costs one connect per child start (children are started rarely:
at boot, after a crash or timeout, and on recycling).

**Signals.** SIGTERM stops claiming and gives running jobs ``shutdown_grace`` seconds;
a second SIGTERM, a SIGINT or the end of the grace period kills them and requeues them
without using up an attempt. Each child leads its own process group, so a terminal's
Ctrl-C reaches only the supervisor and a timeout kills the job's subprocesses too. A
service manager that signals every process of the unit (systemd's default
``KillMode=control-group``) is tolerated: children killed that way during a stop are
requeued, not counted as crashes; ``KillMode=mixed`` lets running jobs finish.
"""

from __future__ import annotations

import os
import random
import signal
import time
import traceback
from multiprocessing.connection import wait as wait_ready
from typing import TYPE_CHECKING, Any

from offload import logs
from offload.store.base import Store
from offload.worker.claims import Claimer
from offload.worker.component import Component, Shared
from offload.worker.config import Stats, WorkerConfig, default_queues, host_name, new_worker_id
from offload.worker.maintenance import Maintenance
from offload.worker.maintenance.leases import LeaseRenewal
from offload.worker.maintenance.lock import LockRenewal
from offload.worker.maintenance.prune import Pruning
from offload.worker.maintenance.rescue import LeaseRescue
from offload.worker.maintenance.rows import ProcessRows
from offload.worker.maintenance.unknown_tasks import UnknownTasks
from offload.worker.pool import Pool
from offload.worker.scheduler import Scheduler
from offload.worker.serving import Serving
from offload.worker.signals import StopRequests
from offload.worker.writes import Recorder, StoreGuard

if TYPE_CHECKING:
    from offload.app import Offload

# Importable from here as before the split into components.
__all__ = ["Stats", "Supervisor", "WorkerConfig", "default_queues", "host_name", "new_worker_id"]

#: Longest the loop blocks, so deadlines are checked even when nothing happens.
MAX_WAIT = 1.0


class Supervisor:
    """A pool of child processes serving some queues. See the module docstring.

    >>> Supervisor(app, WorkerConfig(queues=("default",), concurrency=4)).run()
    """

    def __init__(self, app: Offload, config: WorkerConfig, worker_id: str | None = None) -> None:
        self.app = app
        self.settings = app.settings
        self.config = config
        self.host = host_name(app)
        self.worker_id = worker_id or new_worker_id(self.host)
        self.stats = Stats()
        guard = StoreGuard(self.worker_id)
        shared = Shared(
            app=app, settings=self.settings, config=config, worker_id=self.worker_id,
            guard=guard, recorder=Recorder(lambda: self.app.store, guard, self.stats),
            stats=self.stats,
        )  # fmt: skip
        self._stops = StopRequests()
        self._begun = time.monotonic()
        self._stopping = False
        self._fast = False
        self._pool = Pool(
            shared, on_work_due=self._work_due, fds_for_children=self.fds_for_children
        )
        self._claimer = Claimer(shared, self._pool)
        self._maintenance = Maintenance(
            self.settings.heartbeat,
            [
                LeaseRenewal(shared, self._pool),
                ProcessRows(shared, self._pool, self.host),
                LockRenewal(shared, on_lost=lambda why: self._stop(fast=False, why=why)),
                LeaseRescue(shared, on_rescued=self._work_due),
                UnknownTasks(shared),
                Pruning(shared),
            ],
        )
        scheduler = Scheduler(shared, on_fired=self._work_due)
        # The host-local locks autostart and ensure look for; a drain's idle exit.
        serving = Serving(
            shared, idle=lambda: not self._pool.busy(),
            claim_again=self._work_due, on_idle=lambda why: self._stop(fast=False, why=why),
        )  # fmt: skip
        #: Ticked in this order each turn: the pool reads what its children sent before
        #: maintenance renews their leases, and both before the claimer writes it all;
        #: the scheduler before the claimer, so the jobs it fires are claimed in the same
        #: turn; serving last, to see what that claim found.
        self._components: tuple[Component, ...] = (
            self._pool, self._maintenance, scheduler, self._claimer, serving,
        )  # fmt: skip
        #: Closed in this order on exit: the children first (what they leave joins the
        #: pending writes), then those writes while the leases hold, then the process
        #: table and the lock.
        self._closing: tuple[Component, ...] = (
            self._pool, self._claimer, self._maintenance, scheduler, serving,
        )  # fmt: skip
        services = self._service_host(shared)
        if services is not None:
            # Services after the pool: a job child may be delivering to one of them.
            self._components = (*self._components, services)
            self._closing = (self._pool, services, *self._closing[1:])

    def _service_host(self, shared: Shared) -> Component | None:
        """The service host, if this supervisor hosts any service (loaded only then)."""
        wanted = self.config.services
        if wanted == () or (wanted is None and not self.app._services):
            return None
        from offload.services.host import ServiceHost, select

        definitions = select(self.app, self.config.services)
        if not definitions:
            return None
        return ServiceHost(shared, definitions, self.host, fds_for_children=self.fds_for_children)

    @property
    def store(self) -> Store:
        """The app's store (reopened after each fork; see the module docstring)."""
        return self.app.store

    def fds_for_children(self) -> list[int]:
        """Descriptors a newly forked child must close: its siblings' pipes, the store's
        wake-up socket, the stop-signal socket."""
        fds = [fd for component in self._components for fd in component.fds()]
        fds.extend(self._stops.fds())
        return fds

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> Stats:
        """Serve until stopped (SIGTERM, SIGINT, or idle/budget for a drain); return stats."""
        self._stops.install()
        try:
            for component in self._components:
                component.start()
            if not self.app.tasks:
                logs.log(
                    "worker.no_tasks", "warning", worker=self.worker_id,
                    reason="the app registers no tasks, so this worker can claim no job",
                )  # fmt: skip
            logs.log(
                "worker.started", worker=self.worker_id, kind=self.config.kind,
                pid=os.getpid(), store=self.app.store.location,
                queues=",".join(self.config.queues),
                concurrency=self.config.concurrency,
            )  # fmt: skip
            while not self._finished():
                try:
                    self._turn()
                except Exception as exc:  # the loop must outlive any bug in one turn
                    frame = traceback.extract_tb(exc.__traceback__)[-1]
                    logs.log(
                        "worker.error", "error", worker=self.worker_id, error=repr(exc),
                        where=f"{frame.filename}:{frame.lineno}",
                    )  # fmt: skip
                    time.sleep(0.1 + random.random() * 0.4)
        finally:
            self._shutdown()
            self._stops.close()
        stats = self.stats
        logs.log(
            "worker.stopped", worker=self.worker_id, runs=stats.run, succeeded=stats.succeeded,
            retried=stats.retried, failed=stats.failed, refused=stats.refused,
            requeued=stats.requeued,
        )  # fmt: skip
        return self.stats

    def _turn(self) -> None:
        ready = self._wait()
        self._handle_signals()
        for component in self._components:
            component.tick(time.monotonic(), ready)
        self._check_drain()

    def _finished(self) -> bool:
        return self._stopping and not any(c.busy() for c in self._components)

    def _wait(self) -> list[Any]:
        objects: list[Any] = [obj for c in self._components for obj in c.waitables()]
        objects.append(self._stops)
        timeout = self._timeout()
        for component in self._components:
            timeout = component.before_wait(timeout)
        return list(wait_ready(objects, timeout))

    def _timeout(self) -> float:
        """Seconds until the loop must act unprompted: the earliest moment a component
        reported, a drain's budget, at most ``MAX_WAIT`` (see the rule in component.py)."""
        now = time.monotonic()
        moments = [now + MAX_WAIT]
        if not self._stopping and self.config.budget is not None:
            moments.append(self._begun + self.config.budget)
        for component in self._components:
            at = component.next_at()
            if at is not None:
                moments.append(at)
        return max(0.0, min(moments) - now)

    def _work_due(self) -> None:
        self._claimer.expect_work()

    # -- stopping --------------------------------------------------------------------------
    def request_stop(self, *, fast: bool = False) -> None:
        """Stop as SIGTERM would (``fast``: as SIGINT), from any thread (a test, a
        benchmark, an application embedding a worker).

        >>> threading.Timer(60, supervisor.request_stop).start()
        """
        self._stops.request(signal.SIGINT if fast else signal.SIGTERM)

    def _handle_signals(self) -> None:
        for signum in self._stops.take():
            graceful = signum == signal.SIGTERM and not self._stopping
            self._stop(fast=not graceful, why=f"received {signal.Signals(signum).name}")

    def _stop(self, *, fast: bool, why: str) -> None:
        """Stop claiming; with ``fast``, kill running jobs now (they are requeued)."""
        if not self._stopping:
            self._stopping = True
            logs.log("worker.stopping", worker=self.worker_id, reason=why, fast=fast)
            for component in self._components:
                component.stop(fast=False)
        if fast and not self._fast:
            self._fast = True
            for component in self._components:
                component.stop(fast=True)

    def _check_drain(self) -> None:
        config = self.config
        if self._stopping:
            return
        # The budget ends any worker given one, not only a drain: its moment is in every
        # wait's timeout (see _timeout), so it must be acted on, or the loop would spin.
        if config.budget is not None and time.monotonic() - self._begun >= config.budget:
            self._stop(fast=False, why="budget spent")
            return
        if not config.exit_when_idle:
            return
        busy = any(c.busy() for c in self._components)
        spent = self._claimer.spent
        idle = self._claimer.found_nothing and config.idle_exit is None  # else: Serving
        if not busy and (spent or idle):
            self._stop(fast=False, why="max jobs reached" if spent else "queue empty")

    def _shutdown(self) -> None:
        """Stop the children, write what is pending, leave the process table."""
        self._stop(fast=True, why="exiting")
        for component in self._closing:
            component.close()
        self.app.close()
