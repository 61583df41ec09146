"""``offload wake-listener``: a one-route HTTP endpoint that starts a drain on this host
when a signed wake-up names a queue no worker or drain here serves.

``POST /wake`` with a wake-up body (see :mod:`offload.autostart.signing`) answers

* ``202 {"started": [...], "alive": [...], "starting": [...], "waiting": [...],
  "ignored": [...]}`` once each named queue this listener serves is served or being
  started (the same path as ``autostart="spawn"``: :class:`~offload.autostart.spawn.Spawner`);
  queues it does not serve are ``ignored``;
* ``401`` for a missing or bad signature, a stale timestamp or a replayed nonce, and
  ``400`` for a body that is no wake-up, starting nothing;
* ``404``/``405`` for any other path or method, ``411``/``413`` without a length or past
  :data:`~offload.autostart.signing.MAX_BODY`.

It holds no store connection: the drains it starts open their own. It refuses to listen
on an address other than loopback without a secret.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from offload import logs
from offload.autostart.signing import (
    MAX_BODY,
    SIGNATURE_HEADER,
    BadWake,
    ReplayGuard,
    Unauthorized,
    check,
)
from offload.autostart.spawn import Spawner
from offload.errors import ConfigError
from offload.settings import Settings

__all__ = ["DEFAULT_PORT", "WakeListener", "is_loopback", "parse_bind"]

DEFAULT_PORT = 8642
#: Seconds a client may take to send its request.
REQUEST_TIMEOUT = 5.0


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` to (host, port)."""
    value = text.strip()
    host, port_text = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ConfigError(f"--bind: unclosed '[' in {text!r}")
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigError(f"--bind: expected [ADDRESS]:PORT, got {text!r}")
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    host = host or "127.0.0.1"
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"--bind: expected a port from 0 to 65535, got {port_text!r}")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """True if every address ``host`` names is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    listener: WakeListener

    def __init__(self, address: tuple[str, int], listener: WakeListener) -> None:
        self.listener = listener
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class WakeListener:
    """Serves wake-ups for the queues of one app. See the module docstring.

    >>> listener = WakeListener(app.settings, "shop.jobs:app", ["default"], "127.0.0.1:8642")
    >>> listener.serve_forever()
    """

    def __init__(self, settings: Settings, app_spec: str, queues: Sequence[str], bind: str) -> None:
        host, port = parse_bind(bind)
        self.secret = settings.wake_secret
        if self.secret is None and not is_loopback(host):
            raise ConfigError(
                f"refusing to listen on {host}:{port} without a secret: anyone who can reach "
                "it could start drains. Set OFFLOAD_WAKE_SECRET (the same on the senders), "
                "or bind a loopback address"
            )
        self.queues = frozenset(queues)
        self.spawner = Spawner(settings, app_spec)
        self.guard = ReplayGuard()
        self._server = _Server((host, port), self)
        self.started = 0
        self._lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/wake"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.5)

    def shutdown(self) -> None:
        """Stop serving (from another thread or a signal handler's thread)."""
        self._server.shutdown()

    def close(self) -> None:
        self._server.server_close()

    # -- one wake-up --------------------------------------------------------------------
    def handle(self, body: bytes, signature: str | None) -> tuple[int, dict[str, Any]]:
        """The status and JSON answer for one wake-up."""
        try:
            request = check(self.secret, body, signature, self.guard, time.time())
        except Unauthorized as exc:
            return 401, {"error": str(exc)}
        except BadWake as exc:
            return 400, {"error": str(exc)}
        wanted = [q for q in request.queues if q in self.queues]
        answer: dict[str, list[str]] = {
            "started": [], "alive": [], "starting": [], "waiting": [],
            "ignored": sorted(set(request.queues) - self.queues),
        }  # fmt: skip
        for queue, status in sorted(self.spawner.ensure(wanted).items()):
            answer[status].append(queue)
        with self._lock:
            self.started += len(answer["started"])
        return 202, dict(answer)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT
    server_version = "offload-wake-listener"
    sys_version = ""

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/wake":
            self._reply(404, {"error": "not found: wake-ups go to POST /wake"})
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self._reply(411, {"error": "a Content-Length header is required"})
            return
        length = int(length_text)
        if length > MAX_BODY:
            self._reply(413, {"error": f"body over {MAX_BODY} bytes"})
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self._reply(400, {"error": "body shorter than its Content-Length"})
            return
        status, answer = self.server.listener.handle(body, self.headers.get(SIGNATURE_HEADER))
        logs.log(
            "wake.accepted" if status == 202 else "wake.refused",
            "info" if status == 202 else "warning", status=status, client=self.client_address[0],
            started=",".join(answer.get("started", [])) or None, error=answer.get("error"),
        )  # fmt: skip
        self._reply(status, answer)

    def do_GET(self) -> None:
        self._reply(405, {"error": "wake-ups go to POST /wake"})

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _reply(self, status: int, answer: dict[str, Any]) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 405:
            self.send_header("Allow", "POST")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None  # one logfmt line per wake-up instead (do_POST)
