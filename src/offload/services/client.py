"""Clients of named services: ``app.services["cache"].call(...)`` and ``.send(...)``.

A client resolves the name through the process table (:mod:`offload.services.registry`),
caches the addresses for :data:`RESOLVE_EVERY` seconds, and resolves again at once after a
failure. Requests are spread across the instances at random; connections are kept, per
address, for the next request of any thread of the process (one request at a time on
each). A connection is checked before it is used again: one the service closed, or on
which it said it is closing, is dropped rather than written to.

Every call has a deadline (``timeout``): connecting, the handshake, the request and its
reply all fit in it, so a caller never hangs on a service that is stopped or gone:

* no instance reachable: :class:`ServiceUnavailable` at once (``sent`` False);
* the instance went away after the request was written: ServiceUnavailable with ``sent``
  True, unless the service is idempotent: then the request is tried again on another (or
  the restarted) instance while time is left;
* no reply in time: :class:`ServiceCallTimeout`.

A reply is checked at the boundary: its frame's MAC, then that it is a JSON object
answering this request, with a reply or an error of the right shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import select
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from offload.errors import (
    ServiceAuthError,
    ServiceCallTimeout,
    ServiceError,
    ServiceFailed,
    ServiceNotFound,
    ServiceUnavailable,
    StoreError,
)
from offload.serialization import dumps_limited, loads
from offload.services import protocol, registry
from offload.services.definitions import ServiceDefinition

if TYPE_CHECKING:
    from offload.app import Offload
    from offload.jobs import Job

#: Seconds resolved addresses are used before they are read again from the store.
RESOLVE_EVERY = 30.0
#: Seconds an address that refused a connection is avoided (while others exist).
AVOID_FOR = 5.0
#: Most idle connections kept per address.
MAX_IDLE = 32
#: Pause between two looks for an instance while an idempotent retry waits for one.
RETRY_PAUSE = 0.05


class _Unreachable(Exception):
    """This address cannot be used now (refused, gone, another service listens there)."""


class _Connection:
    """One authenticated connection to an instance. Its socket is non-blocking: each
    read or write tries the system call first and waits (``poll``) only when it must,
    so a round trip costs a few system calls, not one wait before each."""

    __slots__ = ("address", "buf", "closing", "framer", "sock")

    def __init__(self, sock: socket.socket, address: protocol.Address, framer: protocol.Framer):
        sock.setblocking(False)
        self.sock = sock
        self.address = address
        self.framer = framer
        #: Bytes read past the last frame taken.
        self.buf = bytearray()
        #: The service said it is closing: not to be used again.
        self.closing = False

    def usable(self) -> bool:
        """Still open and nothing unasked-for arrived (a ``closing`` frame, or EOF)."""
        if self.closing or self.buf:
            return False
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return True  # open, and nothing waiting
        except OSError:
            return False
        return False  # EOF, or an unsolicited frame (the service is closing): drop it

    def send_all(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
            except (BlockingIOError, InterruptedError):
                _wait(self.sock, select.POLLOUT, deadline)
                continue
            view = view[sent:]

    def read_frame(self, deadline: float) -> bytes:
        """The body of the next frame, its length and MAC checked."""
        self._fill(protocol.HEADER_SIZE, deadline)
        length = self.framer.body_length(self.buf)
        end = protocol.HEADER_SIZE + length
        self._fill(end, deadline)
        mac = bytes(self.buf[protocol.HEADER.size : protocol.HEADER_SIZE])
        body = bytes(self.buf[protocol.HEADER_SIZE : end])
        del self.buf[:end]
        return self.framer.check(mac, body)

    def _fill(self, size: int, deadline: float) -> None:
        while len(self.buf) < size:
            try:
                data = self.sock.recv(max(65536, size - len(self.buf)))
            except (BlockingIOError, InterruptedError):
                _wait(self.sock, select.POLLIN, deadline)
                continue
            if not data:
                raise EOFError("the service closed the connection")
            self.buf += data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _wait(sock: socket.socket, event: int, deadline: float) -> None:
    """Block until ``sock`` is ready for ``event``; socket.timeout past the deadline."""
    poller = select.poll()
    poller.register(sock, event)
    if not poller.poll(max(0.0, _remaining(deadline)) * 1000 + 1):
        _remaining(deadline)  # raises once the deadline has passed


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def _recv_exact(sock: socket.socket, size: int, deadline: float) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        sock.settimeout(_remaining(deadline))
        data = sock.recv(size - len(chunks))
        if not data:
            raise EOFError("the service closed the connection")
        chunks += data
    return bytes(chunks)


class ServiceClient:
    """Requests to one named service. Get it from ``app.services[name]``.

    >>> cache = app.services["cache"]
    >>> cache.call({"op": "get", "key": "feed"}, timeout=2.0)
    >>> cache.send({"op": "put", "key": "feed", "value": [1, 2], "ttl": 60})
    """

    def __init__(self, app: Offload, definition: ServiceDefinition) -> None:
        self.app = app
        self.definition = definition
        self.name = definition.name
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._addresses: list[protocol.Address] = []
        self._resolved_at = -RESOLVE_EVERY
        self._avoid: dict[protocol.Address, float] = {}
        self._idle: dict[protocol.Address, list[_Connection]] = {}

    def __repr__(self) -> str:
        return f"<ServiceClient {self.name}>"

    # -- public -------------------------------------------------------------------------------
    def call(self, payload: Any, *, timeout: float | None = None) -> Any:
        """Send ``payload`` and wait at most ``timeout`` seconds (default
        ``service_timeout``) for the reply. Raises ServiceUnavailable, ServiceCallTimeout,
        ServiceFailed (``work()`` raised) or SerializationError (not strict JSON)."""
        text = self._encode(payload)
        return self._request("call", text, self._deadline(timeout), reply=True)

    def send(self, payload: Any, *, timeout: float | None = None) -> Job[None] | None:
        """Hand ``payload`` to the service and return at once, without its reply.

        When no instance is reachable: ServiceUnavailable, or with ``when_down="queue"``
        the payload is stored as a job the service receives once it is back; that job is
        returned (None when the service took the payload now). ``timeout`` bounds the
        connect and the write only.
        """
        text = self._encode(payload)
        try:
            self._request("send", text, self._deadline(timeout), reply=False)
        except ServiceUnavailable:
            if self.definition.options.when_down != "queue":
                raise
            task = self.app.tasks[self.definition.options.delivery_task]
            job: Job[None] = task.enqueue(payload)
            return job
        return None

    async def acall(self, payload: Any, *, timeout: float | None = None) -> Any:
        """:meth:`call` for async code: it runs in a thread, so the event loop never blocks.

        >>> value = await app.services["cache"].acall({"op": "get", "key": "feed"})
        """
        return await asyncio.to_thread(self.call, payload, timeout=timeout)

    async def asend(self, payload: Any, *, timeout: float | None = None) -> Job[None] | None:
        """:meth:`send` for async code (in a thread, like :meth:`acall`)."""
        return await asyncio.to_thread(self.send, payload, timeout=timeout)

    def deliver(self, payload: Any, *, timeout: float | None = None) -> None:
        """Hand ``payload`` to the service and wait until its ``work()`` ran (what a
        stored send's job does once the service is back)."""
        text = self._encode(payload)
        self._request("deliver", text, self._deadline(timeout), reply=True)

    def close(self) -> None:
        """Close the idle connections (new ones are opened on the next request)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    # -- requests -----------------------------------------------------------------------------
    def _encode(self, payload: Any) -> str:
        return dumps_limited(payload, "payload", self.app.settings.max_payload_bytes)

    def _deadline(self, timeout: float | None) -> float:
        seconds = self.app.settings.service_timeout if timeout is None else timeout
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not seconds > 0:
            raise ValueError(
                f"expected timeout to be a positive number of seconds, got {timeout!r}"
            )
        return time.monotonic() + float(seconds)

    def _request(self, op: str, text: str, deadline: float, *, reply: bool) -> Any:
        retry = self.definition.options.idempotent
        waited = False
        unsent = 0
        while True:
            if unsent >= 3:
                raise ServiceUnavailable(
                    f"service {self.name!r}: the request could not be written", service=self.name
                )
            conn = self._checkout(deadline, wait=waited)
            request_id = next(self._ids)
            body = f'{{"id":{request_id},"op":"{op}","payload":{text}}}'.encode()
            try:
                conn.send_all(conn.framer.encode(body), deadline)
            except TimeoutError:
                conn.close()
                raise self._timeout(deadline) from None
            except OSError:
                # Written not at all or in part: the service cannot have run it (a frame
                # runs only once whole). Another connection may do.
                conn.close()
                self._forget(conn.address)
                unsent += 1
                continue
            if not reply:
                self._checkin(conn)
                return None
            try:
                value = self._read_reply(conn, request_id, deadline)
            except TimeoutError:
                conn.close()
                raise self._timeout(deadline) from None
            except (EOFError, OSError, protocol.FrameError) as exc:
                conn.close()
                self._forget(conn.address)
                if retry and time.monotonic() < deadline:
                    waited = True
                    continue
                raise ServiceUnavailable(
                    f"service {self.name!r} at {conn.address} went away before it replied "
                    f"({exc}); the request may have run",
                    service=self.name, sent=True,
                ) from None  # fmt: skip
            self._checkin(conn)
            return value

    def _timeout(self, deadline: float) -> ServiceCallTimeout:
        return ServiceCallTimeout(f"service {self.name!r} did not reply in time")

    def _read_reply(self, conn: _Connection, request_id: int, deadline: float) -> Any:
        while True:
            message = self._parse(conn.read_frame(deadline))
            if message.get("op") == "closing":
                conn.closing = True
                continue
            if message.get("id") != request_id:
                raise protocol.FrameError(f"a reply to request {message.get('id')!r} came back")
            if message.get("ok") is True and "reply" in message:
                return message["reply"]
            error = message.get("error")
            if (
                message.get("ok") is False
                and isinstance(error, dict)
                and isinstance(error.get("type"), str)
                and isinstance(error.get("message"), str)
            ):
                self._checkin(conn)
                raise ServiceFailed(self.name, error["type"], error["message"])
            raise protocol.FrameError("the reply is neither a result nor an error")

    def _parse(self, body: bytes) -> dict[str, Any]:
        try:
            message = loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise protocol.FrameError("the reply is not JSON") from None
        if not isinstance(message, dict):
            raise protocol.FrameError("the reply is not a JSON object")
        return message

    # -- connections --------------------------------------------------------------------------
    def _checkout(self, deadline: float, *, wait: bool) -> _Connection:
        """A usable connection to some instance; ServiceUnavailable when none is reachable
        (with ``wait``, looks again until the deadline: an idempotent retry waiting for a
        restarted instance)."""
        if os.getpid() != self._pid:
            # Inherited across a fork: the parent's connections are its own (closing our
            # copies of their descriptors leaves them open there), and its lock may have
            # been held by a thread that does not exist here.
            self._lock = threading.Lock()
            for inherited in self._idle.values():
                for each in inherited:
                    each.close()
            self._reset()
        fresh = False
        while True:
            addresses = self._candidates(force=fresh)
            random.shuffle(addresses)
            for address in addresses:
                idle = self._idle_connection(address)
                if idle is not None:
                    return idle
                try:
                    return self._connect(address, deadline)
                except _Unreachable:
                    self._forget(address)
            if not fresh:
                fresh = True  # what the cache said failed: ask the store once more
                continue
            if wait and time.monotonic() + RETRY_PAUSE < deadline:
                time.sleep(RETRY_PAUSE)
                continue
            where = ", ".join(map(str, addresses)) or "no instance is registered"
            raise ServiceUnavailable(
                f"service {self.name!r} is unavailable ({where})", service=self.name
            )

    def _candidates(self, *, force: bool) -> list[protocol.Address]:
        now = time.monotonic()
        with self._lock:
            stale = force or not self._addresses or now - self._resolved_at > RESOLVE_EVERY
        if stale:
            try:
                addresses = registry.resolve(self.app, self.name)
            except StoreError as exc:
                if not self._addresses:
                    raise ServiceUnavailable(
                        f"service {self.name!r}: its address cannot be read from the store "
                        f"({exc})", service=self.name,
                    ) from exc  # fmt: skip
            else:
                with self._lock:
                    self._addresses, self._resolved_at = addresses, now
        with self._lock:
            good = [a for a in self._addresses if self._avoid.get(a, 0.0) <= now]
            # After a fresh look, an address avoided lately is tried again rather than none.
            return (good or list(self._addresses)) if force else good

    def _forget(self, address: protocol.Address) -> None:
        with self._lock:
            self._avoid[address] = time.monotonic() + AVOID_FOR
            for conn in self._idle.pop(address, []):
                conn.close()

    def _idle_connection(self, address: protocol.Address) -> _Connection | None:
        while True:
            with self._lock:
                pool = self._idle.get(address)
                conn = pool.pop() if pool else None
            if conn is None or conn.usable():
                return conn
            conn.close()

    def _checkin(self, conn: _Connection) -> None:
        if conn.closing:
            conn.close()
            return
        with self._lock:
            pool = self._idle.setdefault(conn.address, [])
            if len(pool) < MAX_IDLE:
                pool.append(conn)
                return
        conn.close()

    def _connect(self, address: protocol.Address, deadline: float) -> _Connection:
        settings = self.app.settings
        key = protocol.key_of(settings.secret)
        try:
            if address.kind == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(_remaining(deadline))
                try:
                    sock.connect(address.path)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection(
                    (address.host, address.port), timeout=_remaining(deadline)
                )
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError:
            raise self._timeout(deadline) from None
        except OSError as exc:
            raise _Unreachable(str(exc)) from None
        try:
            challenge = protocol.read_hello(_recv_exact(sock, protocol.HELLO_SIZE, deadline))
            hello = protocol.client_hello(key, challenge, self.name)
            sock.sendall(hello)
            first = _recv_exact(sock, 1, deadline)
            rest = (
                b"" if first == protocol.REFUSED else _recv_exact(sock, protocol.MAC_SIZE, deadline)
            )
            status = protocol.check_answer(key, challenge, hello, first + rest)
        except TimeoutError:
            sock.close()
            raise self._timeout(deadline) from None
        except (EOFError, OSError) as exc:
            sock.close()
            raise _Unreachable(str(exc)) from None
        except protocol.AuthFailed as exc:
            sock.close()
            raise ServiceAuthError(f"service {self.name!r} at {address}: {exc}") from None
        if status != protocol.ACCEPTED:
            sock.close()
            raise _Unreachable(f"another service listens at {address}")
        session = protocol.session_key(
            key, challenge, hello[protocol.NAME_SIZE : protocol.NAME_SIZE + protocol.NONCE_SIZE]
        )
        framer = protocol.Framer(
            session, service=False, cap=protocol.frame_cap(settings.max_payload_bytes)
        )
        return _Connection(sock, address, framer)


class Services(Mapping[str, ServiceClient]):
    """``app.services``: a client for each service the app registers, by name.

    >>> app.services["cache"].call({"op": "get", "key": "feed"})
    >>> sorted(app.services)
    ['cache', 'mailer']
    """

    def __init__(self, app: Offload) -> None:
        self._app = app
        self._clients: dict[str, ServiceClient] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> ServiceClient:
        client = self._clients.get(name)
        if client is not None:
            return client
        definition = self._app._services.get(name)
        if definition is None:
            known = ", ".join(sorted(self._app._services)) or "none"
            raise ServiceNotFound(
                f"no service named {name!r} is registered in this app (registered: {known})"
            )
        with self._lock:
            return self._clients.setdefault(name, ServiceClient(self._app, definition))

    def __iter__(self) -> Iterator[str]:
        return iter(self._app._services)

    def __len__(self) -> int:
        return len(self._app._services)

    def close(self) -> None:
        """Close every client's idle connections."""
        for client in list(self._clients.values()):
            client.close()


__all__ = ["ServiceClient", "ServiceError", "Services"]
