"""The service host: the supervisor's component that runs services, one process per
instance (:mod:`offload.services.server`), and registers them in the process table.

It forks each instance, reads what it reports (its address once it listens, its request
and error counts), writes its row (kind ``service``; ``info`` holds the name and address
clients resolve, see :mod:`offload.services.registry`) at once when it is ready and every
heartbeat, and marks the row stopped as soon as the process exits, so clients stop
resolving it. A process that dies is started again at once; one that dies again soon
after it started (a broken setup, a socket it cannot bind) waits longer each time, up to
:data:`BACKOFF_MAX` seconds. An instance is recycled after its ``recycle_after`` requests
or once its resident size passes its ``memory_limit``: the replacement starts first, then
the old one is told to stop (it finishes what it was sent). Like the job pool, it never
blocks the loop on a store call that fails: rows wait for the store's backoff.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from offload import logs
from offload.errors import ConfigError
from offload.services import protocol
from offload.services.definitions import ServiceDefinition
from offload.services.server import CLOSE_GRACE, service_main
from offload.types import ProcessInfo
from offload.worker.component import Component, Shared
from offload.worker.limits import describe_exit
from offload.worker.process import ChildProcess, fork

if TYPE_CHECKING:
    from offload.app import Offload
    from offload.settings import Settings

#: Longest wait before starting again a service that keeps dying at start.
BACKOFF_MAX = 30.0
#: A process that dies sooner than this after it started counts as failing to start.
QUICK_DEATH = 1.0


def check_bind(settings: Settings) -> None:
    """Refuse a TCP bind that other machines can reach without a secret."""
    if settings.service_bind is None:
        return
    host, _ = protocol.split_host_port(settings.service_bind, what="service_bind", default_port=0)
    if not protocol.is_loopback(host) and not settings.secret:
        raise ConfigError(
            f"service_bind {settings.service_bind!r} is reachable from other machines: set "
            "OFFLOAD_SECRET (at least 16 characters, the same for services and their "
            "clients) so every connection must authenticate"
        )


def select(app: Offload, names: Sequence[str] | None) -> list[ServiceDefinition]:
    """The definitions a worker hosts: ``names`` (None: every registered service)."""
    registered = app._services
    if names is None:
        return list(registered.values())
    unknown = [n for n in names if n not in registered]
    if unknown:
        known = ", ".join(sorted(registered)) or "none"
        raise ConfigError(
            f"no service named {', '.join(map(repr, unknown))} is registered in this app "
            f"(registered: {known})"
        )
    return [registered[n] for n in dict.fromkeys(names)]


@dataclass
class _Instance:
    """One process of a service, as the host holds it."""

    definition: ServiceDefinition
    index: int
    child: ChildProcess
    started: float
    recycle_at: int | None
    address: str | None = None
    requests: int = 0
    errors: int = 0
    #: Told to stop (recycled, once its replacement was registered).
    retiring: bool = False
    #: The instance this one replaces: told to stop once this one is registered.
    replaces: _Instance | None = None
    #: A replacement is starting; no other recycle before this monotonic moment.
    recycle_wait: float = 0.0


class ServiceHost(Component):
    """Runs ``definitions`` (see the module docstring)."""

    def __init__(
        self,
        shared: Shared,
        definitions: Sequence[ServiceDefinition],
        host: str,
        *,
        fds_for_children: Callable[[], list[int]],
    ) -> None:
        check_bind(shared.settings)
        self._shared = shared
        self._definitions = list(definitions)
        self._host = host
        self._fds_for_children = fds_for_children
        self._live: list[_Instance] = []
        #: (definition, index) -> monotonic moment to start it again.
        self._respawn_at: dict[tuple[str, int], float] = {}
        self._failures: dict[tuple[str, int], int] = {}
        self._stopping = False
        self._kill_at: float | None = None
        self._rows_at = 0.0
        #: Rows changed (an instance is ready or exited): write them without waiting.
        self._dirty = False
        self._stopped_rows: list[str] = []

    # -- the component ------------------------------------------------------------------------
    def start(self) -> None:
        for definition in self._definitions:
            for index in range(definition.options.instances):
                self._spawn(definition, index)

    def waitables(self) -> Iterable[Any]:
        objects: list[Any] = []
        for each in self._live:
            objects.append(each.child.sentinel)
            if not each.child.eof:
                objects.append(each.child.conn)
        return objects

    def next_at(self) -> float | None:
        moments = [] if self._stopping else list(self._respawn_at.values())
        if self._kill_at is not None and self._live:
            moments.append(self._kill_at)
        if self._definitions and not self._stopping:
            rows_at = time.monotonic() if self._dirty or self._stopped_rows else self._rows_at
            moments.append(max(rows_at, self._shared.guard.retry_at))
        return min(moments, default=None)

    def tick(self, now: float, ready: Sequence[Any]) -> None:
        for each in list(self._live):
            child = each.child
            if child.conn in ready or child.sentinel in ready:
                self._read(each)
            if child.sentinel in ready:
                self._reap(each)
        now = time.monotonic()
        if not self._stopping:
            for (name, index), at in list(self._respawn_at.items()):
                if now >= at:
                    self._spawn(self._definition(name), index)
        elif self._kill_at is not None and now >= self._kill_at:
            self._kill_at = None  # acted on (their sentinels say when they are gone)
            for each in self._live:
                each.child.kill()
        self._write_rows(now)

    def stop(self, fast: bool) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._respawn_at.clear()
        self._kill_at = time.monotonic() + CLOSE_GRACE + self._shared.settings.kill_grace
        for each in self._live:
            each.child.send({"op": "stop"})

    def busy(self) -> bool:
        """While stopping: an instance has not exited yet (it answers what it was sent)."""
        return self._stopping and bool(self._live)

    def fds(self) -> list[int]:
        return [each.child.conn.fileno() for each in self._live if not each.child.eof]

    def close(self) -> None:
        for each in list(self._live):
            if each.child.exitcode is None:
                each.child.send({"op": "stop"})
        deadline = time.monotonic() + CLOSE_GRACE + self._shared.settings.kill_grace
        for each in list(self._live):
            each.child.join(timeout=max(0.0, deadline - time.monotonic()))
            if each.child.exitcode is None:
                each.child.kill()
                each.child.join(timeout=5.0)
            self._read(each)
            self._reap(each)
        self._flush_stopped()

    # -- instances ----------------------------------------------------------------------------
    def _definition(self, name: str) -> ServiceDefinition:
        return next(d for d in self._definitions if d.name == name)

    def _spawn(self, definition: ServiceDefinition, index: int) -> _Instance | None:
        key = (definition.name, index)
        try:
            child = fork(
                self._shared.app, functools.partial(service_main, definition=definition),
                worker_id=self._shared.worker_id,
                name=f"offload-service-{definition.name}-{index}",
                close_fds=self._fds_for_children(),
            )  # fmt: skip
        except OSError as exc:
            delay = self._backoff(key)
            self._respawn_at[key] = time.monotonic() + delay
            logs.log(
                "service.fork_failed", "error", service=definition.name, error=repr(exc),
                retry_in=round(delay, 2),
            )  # fmt: skip
            return None
        self._respawn_at.pop(key, None)
        each = _Instance(
            definition, index, child, time.monotonic(), definition.options.recycle_at()
        )
        self._live.append(each)
        logs.log("service.started", service=definition.name, pid=child.pid, instance=index)
        return each

    def _backoff(self, key: tuple[str, int]) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return min(BACKOFF_MAX, 0.25 * 2.0 ** min(failures - 1, 8))

    def _read(self, each: _Instance) -> None:
        child = each.child
        while True:
            try:
                if not child.has_message():
                    return
                message = child.receive()
            except (EOFError, OSError):
                child.eof = True
                return
            self._on_message(each, message)

    def _on_message(self, each: _Instance, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "ready":
            try:
                each.address = str(protocol.parse_address(message.get("address")))
            except ValueError as exc:
                logs.log(
                    "service.bad_report", "error", service=each.definition.name, reason=str(exc)
                )
                return
            self._dirty = True
            self._failures.pop((each.definition.name, each.index), None)
            logs.log(
                "service.ready", service=each.definition.name, pid=each.child.pid,
                address=each.address,
            )  # fmt: skip
        elif op == "stats":
            requests, errors, peak = (message.get(k) for k in ("requests", "errors", "peak_rss"))
            if all(type(v) is int and v >= 0 for v in (requests, errors, peak)):
                each.requests, each.errors = requests, errors  # type: ignore[assignment]
                each.child.note_peak_rss(peak)  # type: ignore[arg-type]
                self._maybe_recycle(each)

    def _maybe_recycle(self, each: _Instance, *, rss: int = 0) -> None:
        now = time.monotonic()
        if self._stopping or each.retiring or each.address is None or now < each.recycle_wait:
            return
        options = each.definition.options
        why = None
        if each.recycle_at is not None and each.requests >= each.recycle_at:
            why = f"served {each.requests} requests"
        elif options.memory_limit is not None and rss > options.memory_limit:
            why = f"RSS {rss} bytes is over its memory_limit {options.memory_limit}"
        if why is None:
            return
        logs.log("service.recycle", service=each.definition.name, pid=each.child.pid, reason=why)
        # The replacement first; this one serves until the replacement is registered, so
        # clients always find an instance (see _retire_replaced).
        each.recycle_wait = float("inf")
        replacement = self._spawn(each.definition, each.index)
        if replacement is None:
            each.recycle_wait = now + self._backoff((each.definition.name, each.index))
        else:
            replacement.replaces = each

    def _retire_replaced(self) -> None:
        """Stop the instances whose replacement is now registered."""
        for each in self._live:
            old = each.replaces
            if each.address is None or old is None:
                continue
            each.replaces = None
            if old.child.dead:
                continue
            old.retiring = True
            old.child.send({"op": "stop"})
            # Clients stop resolving it now: it accepts no new connection as it winds down.
            self._stopped_rows.append(old.child.process_id)

    def _reap(self, each: _Instance) -> None:
        child = each.child
        child.join(timeout=1.0)
        child.dead = True
        child.close()
        self._live.remove(each)
        if child.process_id not in self._stopped_rows:
            self._stopped_rows.append(child.process_id)
        name = each.definition.name
        expected = each.retiring or self._stopping
        logs.log(
            "service.exited", "info" if expected else "warning", service=name, pid=child.pid,
            exit=describe_exit(child.exitcode),
        )  # fmt: skip
        if expected:
            return
        key = (name, each.index)
        old = each.replaces
        if old is not None and not old.child.dead:
            # A replacement that died before it was registered: the old instance still
            # serves, and tries again after a backoff.
            old.recycle_wait = time.monotonic() + self._backoff(key)
            return
        successor = next((x for x in self._live if x.replaces is each), None)
        if successor is not None:
            successor.replaces = None  # its replacement is starting already: no other
            return
        quick = each.address is None or time.monotonic() - each.started < QUICK_DEATH
        delay = self._backoff(key) if quick else 0.0
        if not quick:
            self._failures.pop(key, None)
        self._respawn_at[key] = time.monotonic() + delay

    # -- the process table --------------------------------------------------------------------
    def _write_rows(self, now: float) -> None:
        guard = self._shared.guard
        if not guard.ready():
            return
        due = not self._stopping and (self._dirty or now >= self._rows_at)
        if due:
            for each in list(self._live):
                if each.address is not None:
                    self._maybe_recycle(each, rss=each.child.sample_rss())
        self._flush_stopped()
        if not due:
            return
        self._dirty = False
        self._rows_at = now + self._shared.settings.heartbeat
        rows = [
            self._row(each) for each in self._live if each.address is not None and not each.retiring
        ]
        if rows:
            store = self._shared.store

            def beat() -> bool:
                store.process_heartbeat(rows)
                return True

            if guard.call("process_heartbeat", beat):
                self._retire_replaced()
                self._flush_stopped()

    def _flush_stopped(self) -> None:
        if not self._stopped_rows:
            return
        ids, store = list(self._stopped_rows), self._shared.store

        def stop() -> bool:
            store.process_stop(ids)
            return True

        if self._shared.guard.call("process_stop", stop):
            del self._stopped_rows[: len(ids)]

    def _row(self, each: _Instance) -> ProcessInfo:
        child = each.child
        rss = child.rss()
        shared = self._shared
        info = {
            "service": each.definition.name, "address": each.address, "instance": each.index,
            "requests": each.requests, "errors": each.errors,
            "idempotent": each.definition.options.idempotent,
            "heartbeat": shared.settings.heartbeat,
        }  # fmt: skip
        return ProcessInfo(
            id=child.process_id, kind="service", host=self._host, pid=child.pid,
            parent_id=shared.worker_id, started_at=child.started_at, served=each.requests,
            failed=each.errors, rss=rss, peak_rss=max(child.peak_rss, rss),
            info=json.dumps(info, separators=(",", ":")),
        )  # fmt: skip
