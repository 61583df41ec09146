"""The wire protocol between a service and its clients: addresses, the authentication
handshake, and authenticated, length-prefixed JSON frames.

**Handshake.** Nothing a peer sends is parsed before it has proved it holds the shared
secret (the ``secret`` setting, ``OFFLOAD_SECRET``; without one the key is empty, which
only a Unix socket with owner-only permissions or a loopback listener accepts):

1. the service sends ``HELLO``: the magic ``b"OFS1"`` and a fresh 32-byte random
   challenge;
2. the client answers with fixed-size bytes: the service name it means (48 bytes, padded
   with zeros), a 16-byte nonce of its own, its clock (8-byte big-endian float seconds)
   and ``HMAC-SHA256(key, label + challenge + name + nonce + clock)``;
3. the service checks the MAC (in constant time) and that the clock is within
   :data:`MAX_SKEW` seconds of its own, then answers one status byte and a MAC over the
   challenge, the nonce and the status, which proves to the client that the service holds
   the secret too; a refusal is the single byte :data:`REFUSED`, then the connection closes.

A captured exchange cannot be replayed: every connection starts from a new challenge.

**Frames.** After the handshake each message is ``length (4 bytes, big-endian) + MAC (32
bytes) + body`` where the body is UTF-8 strict JSON. The receiver checks the length
against its cap before reading the body, then the MAC over the direction, the frame's
sequence number and the body under a key derived for this connection, and only then
parses the JSON. A frame replayed, reordered or moved to another connection fails the
MAC; the connection is closed.

Requests are ``{"id": n, "op": "call" | "send" | "deliver", "payload": value}``; replies
``{"id": n, "ok": true, "reply": value}`` or ``{"id": n, "ok": false, "error": {"type",
"message"}}``; a service about to stop sends ``{"op": "closing"}`` once on each
connection (it still answers what was sent before the connection was closed).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import struct
import time
from dataclasses import dataclass

from offload.errors import ConfigError

MAGIC = b"OFS1"
CHALLENGE_SIZE = 32
HELLO_SIZE = len(MAGIC) + CHALLENGE_SIZE
NAME_SIZE = 48
NONCE_SIZE = 16
MAC_SIZE = 32
#: What the client sends after HELLO: name, nonce, clock, MAC.
CLIENT_HELLO_SIZE = NAME_SIZE + NONCE_SIZE + 8 + MAC_SIZE
#: The service's answer to a good client hello: status byte and MAC.
ANSWER_SIZE = 1 + MAC_SIZE
#: Status bytes of the answer.
ACCEPTED = 0
WRONG_SERVICE = 1
#: The whole answer when the client's hello fails its check.
REFUSED = b"\xff"
#: Seconds a client's clock may differ from the service's.
MAX_SKEW = 30.0
HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size + MAC_SIZE
#: Bytes a frame may carry beyond its payload (the request or reply envelope).
ENVELOPE = 1024

_CLIENT_LABEL = b"offload-service-v1 client\n"
_SERVER_LABEL = b"offload-service-v1 server\n"
_SESSION_LABEL = b"offload-service-v1 session\n"
_TO_SERVICE = b"C"
_TO_CLIENT = b"S"
_CLOCK = struct.Struct(">d")
_SEQ = struct.Struct(">Q")

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")


class AuthFailed(Exception):
    """The peer failed the handshake (wrong secret, stale clock, wrong service)."""


class FrameError(Exception):
    """A frame is over the cap, fails its MAC, or is not a JSON object."""


def check_name(value: object) -> str:
    """``value`` if it is a valid service name, else ConfigError."""
    if not isinstance(value, str) or not NAME.match(value):
        raise ConfigError(
            f"expected a service name to match {NAME.pattern} (lowercase letters, digits, "
            f"'_' or '-', starting with a letter; at most 48), got {value!r}"
        )
    return value


def key_of(secret: str | None) -> bytes:
    """The handshake key for the ``secret`` setting (empty without one)."""
    return secret.encode() if secret else b""


def frame_cap(max_payload_bytes: int) -> int:
    """The largest frame body accepted: the payload limit and an envelope."""
    return max_payload_bytes + ENVELOPE


# -- the handshake ------------------------------------------------------------------------
def make_hello() -> tuple[bytes, bytes]:
    """``(HELLO bytes, challenge)`` for a new connection."""
    challenge = secrets.token_bytes(CHALLENGE_SIZE)
    return MAGIC + challenge, challenge


def read_hello(data: bytes) -> bytes:
    """The challenge in a service's HELLO; AuthFailed if it is not one."""
    if len(data) != HELLO_SIZE or not data.startswith(MAGIC):
        raise AuthFailed("the peer is not an offload service (unexpected greeting)")
    return data[len(MAGIC) :]


def _padded(name: str) -> bytes:
    raw = name.encode()
    return raw + b"\0" * (NAME_SIZE - len(raw))


def client_hello(key: bytes, challenge: bytes, name: str, now: float | None = None) -> bytes:
    """The client's answer to a challenge, for the service ``name``."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    clock = _CLOCK.pack(time.time() if now is None else now)
    body = _padded(name) + nonce + clock
    return body + hmac.digest(key, _CLIENT_LABEL + challenge + body, "sha256")


@dataclass(frozen=True)
class Hello:
    """A client hello that passed its MAC check."""

    name: str
    nonce: bytes
    clock: float


def check_client_hello(key: bytes, challenge: bytes, data: bytes, now: float) -> Hello:
    """The client hello in ``data`` if its MAC and clock are good, else AuthFailed."""
    if len(data) != CLIENT_HELLO_SIZE:
        raise AuthFailed(f"client hello is {len(data)} bytes, not {CLIENT_HELLO_SIZE}")
    body, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
    expected = hmac.digest(key, _CLIENT_LABEL + challenge + body, "sha256")
    if not hmac.compare_digest(mac, expected):
        raise AuthFailed("bad MAC: the client does not hold this service's secret")
    (clock,) = _CLOCK.unpack(body[NAME_SIZE + NONCE_SIZE :])
    if not abs(now - clock) <= MAX_SKEW:  # also refuses NaN
        raise AuthFailed(f"stale hello: the client's clock is {clock - now:+.1f} s from ours")
    name = body[:NAME_SIZE].rstrip(b"\0").decode("ascii", "replace")
    return Hello(name, body[NAME_SIZE : NAME_SIZE + NONCE_SIZE], clock)


def answer(key: bytes, challenge: bytes, nonce: bytes, status: int) -> bytes:
    """The service's answer to a good client hello."""
    flag = bytes([status])
    return flag + hmac.digest(key, _SERVER_LABEL + challenge + nonce + flag, "sha256")


def check_answer(key: bytes, challenge: bytes, hello: bytes, data: bytes) -> int:
    """The status in the service's answer; AuthFailed if the service proved no secret."""
    if data == REFUSED:
        raise AuthFailed(
            "the service refused the handshake: it holds another secret (set the same "
            "OFFLOAD_SECRET on both sides) or the clocks differ by more than "
            f"{MAX_SKEW:g} s"
        )
    if len(data) != ANSWER_SIZE:
        raise AuthFailed("the service's answer to the handshake is malformed")
    nonce = hello[NAME_SIZE : NAME_SIZE + NONCE_SIZE]
    flag = data[:1]
    expected = hmac.digest(key, _SERVER_LABEL + challenge + nonce + flag, "sha256")
    if not hmac.compare_digest(data[1:], expected):
        raise AuthFailed(
            "the service's answer has a bad MAC: it does not hold this client's secret"
        )
    return data[0]


def session_key(key: bytes, challenge: bytes, nonce: bytes) -> bytes:
    """The key that signs the frames of one connection."""
    return hmac.digest(key, _SESSION_LABEL + challenge + nonce, "sha256")


# -- frames -------------------------------------------------------------------------------
class Framer:
    """Signs outgoing frames and checks incoming ones on one connection, for one side
    (``service`` True on the service's end)."""

    __slots__ = ("_in", "_key", "_out", "_recv_dir", "_send_dir", "_sent", "cap")

    def __init__(self, key: bytes, *, service: bool, cap: int) -> None:
        self._key = key
        self._send_dir, self._recv_dir = (
            (_TO_CLIENT, _TO_SERVICE) if service else (_TO_SERVICE, _TO_CLIENT)
        )
        self._sent = 0
        self._in = 0
        self._out = b""
        self.cap = cap

    def _mac(self, direction: bytes, seq: int, body: bytes) -> bytes:
        return hmac.digest(self._key, direction + _SEQ.pack(seq) + body, "sha256")

    def encode(self, body: bytes) -> bytes:
        """The frame carrying ``body`` (the next in sequence)."""
        if len(body) > self.cap:
            raise FrameError(f"frame body is {len(body)} bytes, over the cap of {self.cap}")
        self._sent += 1
        return HEADER.pack(len(body)) + self._mac(self._send_dir, self._sent, body) + body

    def body_length(self, header: bytes | bytearray) -> int:
        """The body length a frame header announces; FrameError past the cap (checked
        before the body is read)."""
        (length,) = HEADER.unpack(header[: HEADER.size])
        if length > self.cap:
            raise FrameError(f"frame announces {length} bytes, over the cap of {self.cap}")
        return int(length)

    def check(self, mac: bytes, body: bytes) -> bytes:
        """``body`` if its MAC is that of the next frame in sequence, else FrameError."""
        self._in += 1
        if not hmac.compare_digest(mac, self._mac(self._recv_dir, self._in, body)):
            raise FrameError("frame fails its MAC (forged, replayed or out of order)")
        return body


# -- addresses ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Address:
    """Where a service listens: a Unix socket path, or a TCP host and port."""

    kind: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


#: Longest Unix socket path the kernel accepts (sun_path holds 108 bytes with the NUL).
MAX_SOCKET_PATH = 107


def parse_address(text: object) -> Address:
    """The address in ``unix:/path`` or ``tcp:host:port`` text; ValueError naming what is
    wrong (the text comes from the store, so it is checked like any input)."""
    if not isinstance(text, str):
        raise ValueError(f"expected an address string, got {type(text).__name__}")
    kind, _, rest = text.partition(":")
    if kind == "unix":
        if not rest.startswith("/") or len(rest.encode()) > MAX_SOCKET_PATH or "\0" in rest:
            raise ValueError(f"expected unix:/absolute/path (at most 107 bytes), got {text!r}")
        return Address("unix", path=rest)
    if kind == "tcp":
        host, port = split_host_port(rest, what="address")
        if port == 0:
            raise ValueError(f"expected a TCP port from 1 to 65535, got {text!r}")
        return Address("tcp", host=host, port=port)
    raise ValueError(f"expected an address starting unix: or tcp:, got {text!r}")


def split_host_port(text: str, *, what: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` (the port optional with ``default_port``)."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        if not sep or (rest and port_text is None):
            raise ValueError(f"expected {what} as [v6 address]:port, got {text!r}")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, None
    if port_text is None:
        if default_port is None:
            raise ValueError(f"expected {what} as host:port, got {text!r}")
        port = default_port
    elif port_text.isdigit() and int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise ValueError(f"expected {what}'s port to be 0-65535, got {text!r}")
    if not host or any(c.isspace() for c in host) or len(host) > 253:
        raise ValueError(f"expected {what} to name a host, got {text!r}")
    return host, port


def is_loopback(host: str) -> bool:
    """True for a loopback address or ``localhost`` (names are not resolved otherwise)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def socket_dir_default() -> str:
    """Where Unix sockets go without the ``service_socket_dir`` setting: a per-user folder
    under the temporary directory, made with owner-only permissions."""
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"offload-{os.getuid()}", "services")


def digest_name(name: str) -> str:
    """A short stable tag for ``name`` (socket file names stay short)."""
    return hashlib.sha256(name.encode()).hexdigest()[:8]
