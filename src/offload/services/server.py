"""A service's own process: it listens, authenticates every connection, runs ``work()``
for each request and ``loop()`` every tick, and reports to its supervisor over its pipe.

``loop()`` runs every tick, and after requests: once after each batch of requests read
together (a burst of pipelined sends costs one call, not one each), and between two
requests of a long batch whenever its tick is due.

One thread, one ``selectors`` loop, non-blocking sockets: a client that sends half a
frame, or never finishes its handshake, holds nothing but its own buffer, and is dropped
once :data:`AUTH_TIMEOUT` or :data:`FRAME_TIMEOUT` passes. Requests run one at a time, in
arrival order, on the one service instance, so its state needs no lock. A frame whose
announced length is over the cap is refused before its body is read; one that fails its
MAC, or whose body is not a request, closes the connection unparsed or unanswered.

Messages to the supervisor (JSON, see :mod:`offload.worker.protocol`):
``{"op": "ready", "address": "unix:/..."}`` once it listens, then
``{"op": "stats", "requests": n, "errors": n, "peak_rss": bytes}`` when they changed (at
most every :data:`STATS_EVERY` seconds). From the supervisor: ``{"op": "stop"}``: stop
accepting, tell each connection it is closing, answer for :data:`CLOSE_GRACE` seconds
what is still sent, then ``teardown()`` and exit 0.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import stat
import sys
import time
from collections.abc import Iterable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from offload import logs
from offload.errors import SerializationError
from offload.serialization import dumps_limited, loads
from offload.services import protocol
from offload.services.definitions import ServiceDefinition
from offload.worker import protocol as pipe_protocol
from offload.worker.child import _detach_from_supervisor
from offload.worker.limits import peak_rss_self

if TYPE_CHECKING:
    from offload.app import Offload

#: Seconds a new connection has to complete its handshake.
AUTH_TIMEOUT = 5.0
#: Seconds a frame may take to arrive once its first byte did.
FRAME_TIMEOUT = 10.0
#: Seconds a stopping service still answers on its open connections.
CLOSE_GRACE = 1.0
#: Least seconds between two stats messages to the supervisor.
STATS_EVERY = 0.25
#: Most reply bytes waiting for a client that does not read them before it is dropped.
MAX_PENDING_OUT = 8 * 1024 * 1024
OPS = ("call", "send", "deliver")


class BindError(Exception):
    """The listening socket cannot be made (a path too long, a folder not ours)."""


def bind(app: Offload, name: str) -> tuple[socket.socket, protocol.Address]:
    """The listening socket of one instance of ``name``, by the settings, and the address
    clients should use."""
    settings = app.settings
    if settings.service_bind is None:
        return _bind_unix(settings.service_socket_dir or protocol.socket_dir_default(), name)
    host, port = protocol.split_host_port(
        settings.service_bind, what="service_bind", default_port=0
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    advertised = host
    if host in ("0.0.0.0", "::"):
        from offload.worker.config import host_name

        advertised = host_name(app)
    return sock, protocol.Address("tcp", host=advertised, port=int(sock.getsockname()[1]))


def _bind_unix(folder: str, name: str) -> tuple[socket.socket, protocol.Address]:
    _private_folder(folder)
    _remove_dead_sockets(folder, name)
    path = os.path.join(folder, f"{name}-{os.getpid()}.sock")
    if len(path.encode()) > protocol.MAX_SOCKET_PATH:
        raise BindError(
            f"the socket path {path} is over {protocol.MAX_SOCKET_PATH} bytes: set "
            "service_socket_dir (OFFLOAD_SERVICE_SOCKET_DIR) to a shorter folder"
        )
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a socket left by a killed process that had this pid
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # created owner-only: no window where others may connect
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old)
    return sock, protocol.Address("unix", path=path)


def _remove_dead_sockets(folder: str, name: str) -> None:
    """Delete the sockets of this service's processes that are gone (killed processes
    leave theirs). The folder is this user's alone, so every pid in it was ours."""
    prefix = f"{name}-"
    for entry in os.listdir(folder):
        pid_text = entry[len(prefix) : -len(".sock")]
        if not (entry.startswith(prefix) and entry.endswith(".sock") and pid_text.isdigit()):
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, entry))
        except PermissionError:
            pass  # alive (the pid now belongs to someone else's process)


def _private_folder(folder: str) -> None:
    """Make ``folder`` (and its parent) owner-only, or refuse one another user can write."""
    for each in (os.path.dirname(folder), folder):
        try:
            os.mkdir(each, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise BindError(f"cannot create the socket folder {each}: {exc.strerror}") from None
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise BindError(f"the socket folder {folder} exists and is not a folder")
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise BindError(
            f"the socket folder {folder} must belong to this user with owner-only "
            f"permissions (it has uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o})"
        )


class _Peer:
    """One client connection as the service holds it."""

    __slots__ = ("address", "buf", "challenge", "closing", "deadline", "framer", "out", "sock")

    def __init__(self, sock: socket.socket, challenge: bytes, now: float, address: str) -> None:
        self.sock = sock
        self.challenge = challenge
        self.address = address
        self.buf = bytearray()
        self.out = bytearray()
        self.framer: protocol.Framer | None = None
        #: Monotonic moment by which the handshake or the frame begun must be complete.
        self.deadline: float | None = now + AUTH_TIMEOUT
        #: The "closing" frame was sent (or is queued).
        self.closing = False


class ServiceServer:
    """The loop of one service process (see the module docstring)."""

    def __init__(
        self,
        app: Offload,
        conn: Connection,
        definition: ServiceDefinition,
        listener: socket.socket,
        address: protocol.Address,
        instance: Any,
    ) -> None:
        self.app = app
        self.conn = conn
        self.definition = definition
        self.name = definition.name
        self.listener = listener
        self.address = address
        self.instance = instance
        settings = app.settings
        self.key = protocol.key_of(settings.secret)
        self.cap = protocol.frame_cap(settings.max_payload_bytes)
        self.max_payload = settings.max_payload_bytes
        self.tick = definition.options.tick or settings.service_tick
        self._loop = getattr(instance, "loop", None)
        self.requests = 0
        self.errors = 0
        self._reported = (-1, -1)
        self._report_at = 0.0
        self._peers: dict[int, _Peer] = {}
        self._selector = selectors.DefaultSelector()
        self._stop_at: float | None = None
        self._next_tick = time.monotonic() + self.tick

    # -- the loop ---------------------------------------------------------------------------
    def serve(self) -> None:
        """Serve until told to stop (then tear down) or until the supervisor is gone."""
        self.listener.setblocking(False)
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        self._selector.register(self.conn.fileno(), selectors.EVENT_READ, None)
        self._send_parent(op="ready", address=str(self.address))
        while self._stop_at is None or (self._peers and time.monotonic() < self._stop_at):
            for key, mask in self._selector.select(self._timeout()):
                self._on_event(key.fileobj, mask)
            now = time.monotonic()
            self._run_loop_if_due(now)
            self._expire(now)
            self._report(now)
        for peer in list(self._peers.values()):
            self._close(peer)
        teardown = getattr(self.instance, "teardown", None)
        if teardown is not None:
            try:
                teardown()
            except Exception as exc:
                logs.log("service.teardown_error", "error", service=self.name, error=repr(exc))
        self._report(time.monotonic(), force=True)

    def _timeout(self) -> float:
        now = time.monotonic()
        moments = [self._next_tick, now + 1.0]
        moments.extend(p.deadline for p in self._peers.values() if p.deadline is not None)
        if self._stop_at is not None:
            moments.append(self._stop_at)
        return max(0.0, min(moments) - now)

    def _on_event(self, fileobj: Any, mask: int) -> None:
        if fileobj is self.listener:
            self._accept()
        elif isinstance(fileobj, int):
            self._on_pipe()
        else:
            peer = self._peers.get(fileobj.fileno())
            if peer is None:
                return
            if mask & selectors.EVENT_WRITE:
                self._flush(peer)
            if mask & selectors.EVENT_READ and peer.sock.fileno() >= 0:
                self._read(peer)

    def _run_loop_if_due(self, now: float) -> None:
        if now >= self._next_tick:
            self._run_loop()

    def _run_loop(self) -> None:
        """Call ``loop()`` now; the next tick is one ``tick`` from now."""
        if self._loop is not None and self._stop_at is None:
            try:
                self._loop()
            except Exception as exc:
                self.errors += 1
                logs.log("service.loop_error", "error", service=self.name, error=repr(exc))
        self._next_tick = time.monotonic() + self.tick

    def _expire(self, now: float) -> None:
        for peer in list(self._peers.values()):
            if peer.deadline is not None and now >= peer.deadline:
                what = "handshake" if peer.framer is None else "frame"
                logs.log(
                    "service.slow_client", "warning", service=self.name, peer=peer.address,
                    reason=f"the {what} did not arrive in time",
                )  # fmt: skip
                self._close(peer)

    def _report(self, now: float, force: bool = False) -> None:
        counts = (self.requests, self.errors)
        if counts == self._reported or (now < self._report_at and not force):
            return
        self._reported = counts
        self._report_at = now + STATS_EVERY
        self._send_parent(
            op="stats", requests=self.requests, errors=self.errors, peak_rss=peak_rss_self()
        )

    def _send_parent(self, **message: Any) -> None:
        try:
            self.conn.send_bytes(pipe_protocol.encode(message))
        except OSError:
            os._exit(1)  # the supervisor is gone: nothing here can be reported

    def _on_pipe(self) -> None:
        try:
            while self.conn.poll(0):
                message = pipe_protocol.decode(self.conn.recv_bytes())
                if message.get("op") == "stop":
                    self._begin_stop()
        except (EOFError, OSError):
            os._exit(1)  # the supervisor is gone (its death signal follows)

    def _begin_stop(self) -> None:
        if self._stop_at is not None:
            return
        self._stop_at = time.monotonic() + CLOSE_GRACE
        self._selector.unregister(self.listener)
        self.listener.close()
        if self.address.kind == "unix":
            with contextlib.suppress(OSError):
                os.unlink(self.address.path)
        for peer in list(self._peers.values()):
            if peer.framer is None:
                self._close(peer)
            else:
                self._send_frame(peer, b'{"op":"closing"}')
                peer.closing = True

    # -- connections ------------------------------------------------------------------------
    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, where = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: the rest wait in the backlog
                logs.log("service.accept_error", "warning", service=self.name, error=repr(exc))
                return
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            hello, challenge = protocol.make_hello()
            peer = _Peer(sock, challenge, time.monotonic(), _describe_peer(where))
            self._peers[sock.fileno()] = peer
            self._selector.register(sock, selectors.EVENT_READ, None)
            peer.out += hello
            self._flush(peer)

    def _read(self, peer: _Peer) -> None:
        try:
            data = peer.sock.recv(256 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(peer)
            return
        peer.buf += data
        if peer.framer is None and not self._authenticate(peer):
            return
        self._take_frames(peer)

    def _authenticate(self, peer: _Peer) -> bool:
        """Check the client's hello once it is all there; False while it is not (or once
        it failed and the connection closed)."""
        if len(peer.buf) < protocol.CLIENT_HELLO_SIZE:
            return False
        data = bytes(peer.buf[: protocol.CLIENT_HELLO_SIZE])
        del peer.buf[: protocol.CLIENT_HELLO_SIZE]
        try:
            hello = protocol.check_client_hello(self.key, peer.challenge, data, time.time())
        except protocol.AuthFailed as exc:
            logs.log(
                "service.auth_refused", "warning", service=self.name, peer=peer.address,
                reason=str(exc),
            )  # fmt: skip
            self._refuse(peer, protocol.REFUSED)
            return False
        if hello.name != self.name:
            answer = protocol.answer(self.key, peer.challenge, hello.nonce, protocol.WRONG_SERVICE)
            self._refuse(peer, answer)
            return False
        peer.out += protocol.answer(self.key, peer.challenge, hello.nonce, protocol.ACCEPTED)
        session = protocol.session_key(self.key, peer.challenge, hello.nonce)
        peer.framer = protocol.Framer(session, service=True, cap=self.cap)
        peer.deadline = None
        self._flush(peer)
        return True

    def _refuse(self, peer: _Peer, answer: bytes) -> None:
        with contextlib.suppress(OSError):
            peer.sock.send(answer)
        self._close(peer)

    def _take_frames(self, peer: _Peer) -> None:
        framer = peer.framer
        assert framer is not None
        buf = peer.buf
        handled = False
        while len(buf) >= protocol.HEADER_SIZE and peer.sock.fileno() >= 0:
            try:
                length = framer.body_length(buf)
            except protocol.FrameError as exc:
                self._drop(peer, str(exc))
                return
            end = protocol.HEADER_SIZE + length
            if len(buf) < end:
                break
            mac = bytes(buf[protocol.HEADER.size : protocol.HEADER_SIZE])
            body = bytes(buf[protocol.HEADER_SIZE : end])
            del buf[:end]
            try:
                framer.check(mac, body)
            except protocol.FrameError as exc:
                self._drop(peer, str(exc))
                return
            if not self._handle(peer, body):
                return
            handled = True
            # A long run of requests does not hold loop() back past its tick.
            self._run_loop_if_due(time.monotonic())
        if handled:
            self._run_loop()  # after requests: once per batch that arrived together
        if peer.sock.fileno() >= 0:
            peer.deadline = time.monotonic() + FRAME_TIMEOUT if buf else None

    def _drop(self, peer: _Peer, reason: str) -> None:
        logs.log(
            "service.bad_frame", "warning", service=self.name, peer=peer.address, reason=reason
        )
        self._close(peer)

    def _handle(self, peer: _Peer, body: bytes) -> bool:
        """Run one authenticated request; False if it was malformed (then dropped)."""
        try:
            message = loads(body.decode("utf-8"))
        except (UnicodeDecodeError, SerializationError):
            self._drop(peer, "the frame's body is not JSON")
            return False
        request_id = message.get("id") if isinstance(message, dict) else None
        op = message.get("op") if isinstance(message, dict) else None
        if type(request_id) is not int or op not in OPS or "payload" not in message:
            self._drop(peer, 'expected {"id": int, "op": "call"|"send"|"deliver", "payload": ...}')
            return False
        self.requests += 1
        try:
            reply = self.instance.work(message["payload"])
            if op == "call":
                text = dumps_limited(reply, "reply", self.max_payload)
                out = f'{{"id":{request_id},"ok":true,"reply":{text}}}'
            else:
                out = f'{{"id":{request_id},"ok":true,"reply":null}}'
        except Exception as exc:
            self.errors += 1
            logs.log("service.work_error", "warning", service=self.name, op=op, error=repr(exc))
            error = {"type": type(exc).__qualname__, "message": str(exc)[:4000]}
            if op == "deliver":  # delivered: the error is the service's own, as for a send
                out = f'{{"id":{request_id},"ok":true,"reply":null}}'
            else:
                out = dumps_limited(
                    {"id": request_id, "ok": False, "error": error}, "error", self.cap
                )
        if op != "send":
            self._send_frame(peer, out.encode())
        return True

    def _send_frame(self, peer: _Peer, body: bytes) -> None:
        assert peer.framer is not None
        peer.out += peer.framer.encode(body)
        self._flush(peer)

    def _flush(self, peer: _Peer) -> None:
        if peer.sock.fileno() < 0:
            return
        if peer.out:
            try:
                sent = peer.sock.send(peer.out)
                del peer.out[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._close(peer)
                return
        if len(peer.out) > MAX_PENDING_OUT:
            self._drop(peer, "the client does not read its replies")
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.out else 0)
        with contextlib.suppress(KeyError, ValueError):
            if self._selector.get_key(peer.sock).events != events:
                self._selector.modify(peer.sock, events, None)

    def _close(self, peer: _Peer) -> None:
        fd = peer.sock.fileno()
        if fd < 0:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(peer.sock)
        self._peers.pop(fd, None)
        peer.sock.close()


def _describe_peer(where: Any) -> str:
    if isinstance(where, tuple) and len(where) >= 2:
        return f"{where[0]}:{where[1]}"
    return "unix"


def service_main(
    app: Offload,
    conn: Connection,
    worker_id: str,
    parent_pid: int,
    close_fds: Iterable[int],
    *,
    definition: ServiceDefinition,
) -> None:
    """Entry point of a forked service process: set up, listen, serve."""
    _detach_from_supervisor(parent_pid, close_fds)
    name = definition.name
    try:
        instance = definition.cls()
        setup = getattr(instance, "setup", None)
        if setup is not None:
            setup()
    except Exception as exc:
        logs.log("service.setup_error", "error", service=name, error=repr(exc))
        sys.exit(3)
    try:
        listener, address = bind(app, name)
    except BindError as exc:
        logs.log("service.bind_error", "error", service=name, reason=str(exc))
        sys.exit(4)
    ServiceServer(app, conn, definition, listener, address, instance).serve()
