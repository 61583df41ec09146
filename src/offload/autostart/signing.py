"""Wake-ups on the wire: their body, their signature, and the listener's checks.

A wake-up is one ``POST`` whose body is JSON::

    {"v": 1, "queues": ["default"], "ts": 1764000000.123, "nonce": "9f3a...32 hex..."}

signed with HMAC-SHA256 over the shared secret (``OFFLOAD_WAKE_SECRET``): the header
``X-Offload-Signature: sha256=<hex>`` covers a fixed prefix and the exact body bytes. The
listener refuses (401) a missing or wrong signature, a timestamp more than
:data:`MAX_AGE` seconds from its clock, and a nonce it saw within that window (a replay).
It remembers a nonce only once the signature is good, so forged requests cannot fill its
memory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from offload.settings import IDENTIFIER

__all__ = [
    "MAX_AGE",
    "MAX_BODY",
    "SIGNATURE_HEADER",
    "BadWake",
    "ReplayGuard",
    "Unauthorized",
    "WakeRequest",
    "check",
    "make_body",
    "sign",
]

SIGNATURE_HEADER = "X-Offload-Signature"
#: Seconds a wake-up's timestamp may differ from the listener's clock.
MAX_AGE = 30.0
#: Largest body a listener reads.
MAX_BODY = 4096
#: Most queues one wake-up may name.
MAX_QUEUES = 64
#: Most nonces a listener remembers at once (past it, wake-ups are refused until old
#: ones age out: only signed wake-ups are remembered, so only a sender can fill it).
MAX_NONCES = 100_000
_PREFIX = b"offload-wake-v1\n"
_NONCE = re.compile(r"^[0-9a-f]{32}$")
_SIGNATURE = re.compile(r"^sha256=([0-9a-f]{64})$")


class BadWake(ValueError):
    """The body is not a wake-up (answered 400)."""


class Unauthorized(Exception):
    """The wake-up is not signed right, too old, or replayed (answered 401)."""


@dataclass(frozen=True, slots=True)
class WakeRequest:
    queues: tuple[str, ...]
    ts: float
    nonce: str


def make_body(queues: Iterable[str], now: float | None = None) -> bytes:
    """A fresh wake-up body naming ``queues``."""
    payload = {
        "v": 1,
        "queues": sorted(set(queues)),
        "ts": round(time.time() if now is None else now, 3),
        "nonce": secrets.token_hex(16),
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    digest = hmac.new(secret.encode(), _PREFIX + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def parse(body: bytes) -> WakeRequest:
    """The wake-up in ``body``; BadWake naming what is wrong."""
    if len(body) > MAX_BODY:
        raise BadWake(f"body is {len(body)} bytes, over {MAX_BODY}")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadWake("body is not JSON") from None
    if not isinstance(data, dict) or data.get("v") != 1:
        raise BadWake('body must be a JSON object with "v": 1')
    queues, ts, nonce = data.get("queues"), data.get("ts"), data.get("nonce")
    if (
        not isinstance(queues, list)
        or not 0 < len(queues) <= MAX_QUEUES
        or not all(isinstance(q, str) and IDENTIFIER.match(q) for q in queues)
    ):
        raise BadWake(f'"queues" must be a list of 1 to {MAX_QUEUES} queue names')
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
        raise BadWake('"ts" must be a number (seconds since the epoch)')
    if not isinstance(nonce, str) or not _NONCE.match(nonce):
        raise BadWake('"nonce" must be 32 lowercase hex digits')
    return WakeRequest(tuple(queues), float(ts), nonce)


class ReplayGuard:
    """The nonces admitted lately, by arrival (thread-safe). A nonce whose timestamp
    passes the age check can only come back within ``2 * MAX_AGE`` of its arrival, so
    older ones are forgotten."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}  # nonce -> arrival, oldest first
        self._lock = threading.Lock()

    def admit(self, request: WakeRequest, now: float) -> None:
        """Remember the nonce, or Unauthorized if the wake-up is stale or replayed."""
        if abs(now - request.ts) > MAX_AGE:
            raise Unauthorized(
                f"stale: timestamp is {now - request.ts:+.0f} s from this host's clock "
                f"(at most {MAX_AGE:g} s allowed)"
            )
        with self._lock:
            seen = self._seen
            while seen:
                oldest = next(iter(seen))
                if now - seen[oldest] <= 2 * MAX_AGE:
                    break
                del seen[oldest]
            if request.nonce in seen:
                raise Unauthorized("replayed: this nonce was already used")
            if len(seen) >= MAX_NONCES:
                raise Unauthorized("too many recent wake-ups")
            seen[request.nonce] = now


def check(
    secret: str | None, body: bytes, signature: str | None, guard: ReplayGuard, now: float
) -> WakeRequest:
    """The wake-up in ``body`` if it passes every check. Unauthorized for a bad or
    missing signature (when there is a secret), a stale time or a replay; BadWake for a
    body that is no wake-up."""
    if secret is not None:
        match = _SIGNATURE.match(signature or "")
        if match is None:
            raise Unauthorized(f"missing or malformed {SIGNATURE_HEADER} header")
        if not hmac.compare_digest(sign(secret, body), f"sha256={match.group(1)}"):
            raise Unauthorized("bad signature")
    request = parse(body)
    guard.admit(request, now)
    return request
