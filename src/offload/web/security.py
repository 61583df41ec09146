"""What every response of the web application gets: a Host check and security headers,
and the credentials and roles that guard the operator's routes (the dashboard,
``/metrics``).

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
from typing import Any, Literal

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

#: What a user may do on the dashboard: ``admin`` sees and acts (retry, cancel, delete),
#: ``read-only`` sees only. Both may read ``/metrics``.
Role = Literal["admin", "read-only"]
ADMIN: Role = "admin"
READ_ONLY: Role = "read-only"
ROLES: tuple[Role, ...] = (ADMIN, READ_ONLY)

#: ``authorize``: the host application's verdict on a request: ``True`` or ``"admin"``
#: (may act), ``"read-only"`` (may look), ``False`` or ``None`` (refused). Sync or async.
Verdict = bool | Role | None
Authorize = Callable[[Request], Verdict | Awaitable[Verdict]]


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
    """Who may use the operator's routes (the dashboard, ``/metrics``), and in which
    role: whoever knows ``password`` is admin and whoever knows ``read_only_password``
    read-only (HTTP basic authentication, any user name), and ``authorize`` (a hook into
    the host application's own login) decides for everyone else. Without any of them,
    anyone who reaches the app is admin (the default is reachable over loopback only)."""

    def __init__(
        self,
        password: str | None,
        authorize: Authorize | None,
        read_only_password: str | None = None,
    ) -> None:
        for name, value in (("password", password), ("read_only_password", read_only_password)):
            if value is not None and (not isinstance(value, str) or len(value) < 8):
                raise ConfigError(f"expected {name} to be a str of at least 8 characters")
        if password is not None and password == read_only_password:
            raise ConfigError("password and read_only_password must differ")
        if authorize is not None and not callable(authorize):
            raise ConfigError(f"expected authorize to be callable, got {authorize!r}")
        self._digests: list[tuple[bytes, Role]] = [
            (hashlib.sha256(secret.encode()).digest(), role)
            for secret, role in ((password, ADMIN), (read_only_password, READ_ONLY))
            if secret
        ]
        self._authorize = authorize

    @property
    def configured(self) -> bool:
        return bool(self._digests) or self._authorize is not None

    @property
    def basic(self) -> bool:
        """Whether a refused request should be asked for a password."""
        return bool(self._digests)

    async def role(self, request: Request) -> Role | None:
        """The role of whoever sent ``request``; None when refused."""
        if not self.configured:
            return ADMIN
        given = self._basic_password(request) if self._digests else None
        if given is not None:
            digest = hashlib.sha256(given.encode()).digest()
            for expected, role in self._digests:
                if hmac.compare_digest(digest, expected):
                    return role
        if self._authorize is not None:
            verdict = self._authorize(request)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict is True:
                return ADMIN
            if isinstance(verdict, str) and verdict in ROLES:
                return verdict
        return None

    async def allows(self, request: Request) -> bool:
        """Whether ``request`` may read (any role)."""
        return await self.role(request) is not None

    @staticmethod
    def _basic_password(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded or len(encoded) > 1024:
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, sep, given = decoded.partition(":")
        return given if sep else None


def default_hosts(extra: Sequence[str] = ()) -> frozenset[str]:
    """The loopback names, and ``extra``."""
    return normalise_hosts([*LOOPBACK_NAMES, *extra])
