"""What every response of the web application gets: a Host check and security headers,
and the credentials that guard the operator's routes (``/metrics``).

A pure ASGI middleware, so it covers every route, the static files and the errors alike
(a 404 or a 500 carries the same headers as a 200).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import inspect
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

from starlette.requests import Request

from offload.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Host names every loopback client may use.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

#: No inline script or style, nothing from another origin, never inside a frame.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # Status URLs carry a token: never send them on as a Referer.
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
_BAD_HOST = b'{"error":"bad host"}'

#: ``authorize``: decides whether a request may use the operator's routes.
Authorize = Callable[[Request], bool | Awaitable[bool]]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalise_hosts(hosts: Iterable[str]) -> frozenset[str]:
    """Host names as the middleware compares them: lowercase, IPv6 without brackets. ``*``
    allows any host. Raises ConfigError for anything else that is no host name."""
    out = set()
    for host in hosts:
        if not isinstance(host, str) or not host.strip():
            raise ConfigError(f"allowed_hosts: expected host names, got {host!r}")
        name = host.strip().lower()
        if name != "*":
            name = name.strip("[]")
            if len(name) > 253 or any(c.isspace() or c in "/@?#" for c in name):
                raise ConfigError(f"allowed_hosts: {host!r} is not a host name")
        out.add(name)
    return frozenset(out)


def host_name(header: bytes) -> str | None:
    """The host of a ``Host`` header (its port dropped), lowercase; None if malformed."""
    try:
        text = header.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return None
    if not text or len(text) > 260 or any(c.isspace() or c in "/@?#\\" for c in text):
        return None
    if text.startswith("["):  # [::1]:8787
        end = text.find("]")
        if end < 0 or (text[end + 1 :] and not _is_port(text[end + 1 :])):
            return None
        return text[1:end]
    name, sep, port = text.rpartition(":")
    if not sep:
        return text
    if ":" in name:  # a bare IPv6 address without brackets: no port to drop
        return text
    return name if _is_port(":" + port) and name else None


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit() and 0 < len(text) <= 6


class SecurityMiddleware:
    """Answers 400 to a request whose ``Host`` is not allowed, and adds the security
    headers to every response."""

    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed_hosts
        self.any_host = "*" in allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self.any_host:
            hosts = [v for k, v in scope.get("headers", ()) if k == b"host"]
            name = host_name(hosts[0]) if len(hosts) == 1 else None
            if name is None or name not in self.allowed:
                await _bad_host(scope, send)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() not in _HEADER_NAMES
                ]
                message["headers"] = [*headers, *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


_HEADER_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


async def _bad_host(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_BAD_HOST)).encode()),
        (b"cache-control", b"no-store"),
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": _BAD_HOST})


class Credentials:
    """Who may use the operator's routes: anyone who knows ``password`` (HTTP basic
    authentication, any user name), or whom ``authorize`` accepts (a hook into the host
    application's own login). Without either, anyone who reaches the app may."""

    def __init__(self, password: str | None, authorize: Authorize | None) -> None:
        if password is not None and (not isinstance(password, str) or len(password) < 8):
            raise ConfigError("expected password to be a str of at least 8 characters")
        if authorize is not None and not callable(authorize):
            raise ConfigError(f"expected authorize to be callable, got {authorize!r}")
        self._digest = hashlib.sha256(password.encode()).digest() if password else None
        self._authorize = authorize

    @property
    def configured(self) -> bool:
        return self._digest is not None or self._authorize is not None

    @property
    def basic(self) -> bool:
        """Whether a refused request should be asked for a password."""
        return self._digest is not None

    async def allows(self, request: Request) -> bool:
        if not self.configured:
            return True
        if self._digest is not None and self._password_matches(request):
            return True
        if self._authorize is not None:
            verdict = self._authorize(request)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            return verdict is True
        return False

    def _password_matches(self, request: Request) -> bool:
        assert self._digest is not None
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded or len(encoded) > 1024:
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        _, sep, given = decoded.partition(":")
        if not sep:
            return False
        return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), self._digest)


def default_hosts(extra: Sequence[str] = ()) -> frozenset[str]:
    """The loopback names, and ``extra``."""
    return normalise_hosts([*LOOPBACK_NAMES, *extra])
