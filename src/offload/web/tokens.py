"""Status tokens: capabilities that let one end user read one job's public status.

A token is ``<payload>.<mac>``, both base64url without padding. The payload is
``<job id>|<expiry>`` (expiry in whole epoch seconds, empty for none) and the mac its
HMAC-SHA256 under the app's ``secret`` setting, with a purpose label mixed in so the key
signs nothing else by accident. Whoever holds the token may read that job's status; no
one can make one for another job, or stretch its expiry, without the secret.

The expiry is judged by the wall clock of the process that checks the token. This module
uses the standard library only: ``job.status_token()`` imports it from the core.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import math
import re
import time

from offload.errors import ConfigError

#: Mixed into every mac: a token for this purpose, version 1.
PURPOSE = b"offload.status-token.v1\x00"
#: Longest token accepted (a job id of 200 characters fits well inside).
MAX_TOKEN = 512
#: Longest expiry accepted, in seconds (about 100 years).
MAX_EXPIRES_IN = 100 * 366 * 86400.0
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{2,400}\.[A-Za-z0-9_-]{43}$")
_JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


def _key(secret: str | None) -> bytes:
    if not secret:
        raise ConfigError(
            "status tokens need the secret setting: set OFFLOAD_SECRET (or "
            "Offload(secret=...)) to a random string of at least 16 characters, the same "
            "in the process that makes tokens and in the one that serves /status"
        )
    return secret.encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, PURPOSE + payload, hashlib.sha256).digest()


def sign(
    job_id: str,
    secret: str | None,
    expires_in: float | dt.timedelta | None = None,
    *,
    now: float | None = None,
) -> str:
    """A token for ``job_id``, valid for ``expires_in`` seconds (None: for as long as the
    job exists). Raises ConfigError without a secret or for a bad ``expires_in``."""
    key = _key(secret)
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise ConfigError(f"cannot make a status token for job id {job_id!r}")
    expiry = ""
    if expires_in is not None:
        if isinstance(expires_in, dt.timedelta):
            expires_in = expires_in.total_seconds()
        if (
            not isinstance(expires_in, int | float)
            or isinstance(expires_in, bool)
            or not 0 < expires_in <= MAX_EXPIRES_IN
        ):
            raise ConfigError(
                "expected expires_in to be positive seconds or a timedelta (at most "
                f"{MAX_EXPIRES_IN:.0f}), or None, got {expires_in!r}"
            )
        start = time.time() if now is None else now
        expiry = str(math.ceil(start + expires_in))
    payload = f"{job_id}|{expiry}".encode("ascii")
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def verify(token: object, secret: str | None, *, now: float | None = None) -> str | None:
    """The job id ``token`` was made for, or None when it is malformed, forged (another
    secret, an edited payload) or expired. Never raises for a bad token; raises
    ConfigError when no secret is configured."""
    key = _key(secret)
    if not isinstance(token, str) or len(token) > MAX_TOKEN or not _TOKEN.match(token):
        return None
    encoded, _, mac_text = token.partition(".")
    try:
        payload = _unb64(encoded)
        mac = _unb64(mac_text)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(mac, _mac(key, payload)):
        return None
    # Signed by us: the payload is what sign() wrote. Checked all the same.
    try:
        job_id, sep, expiry = payload.decode("ascii").partition("|")
    except UnicodeDecodeError:
        return None
    if not sep or not _JOB_ID.match(job_id):
        return None
    if expiry:
        if not expiry.isdigit() or len(expiry) > 15:
            return None
        if (time.time() if now is None else now) >= int(expiry):
            return None
    return job_id
