"""``autostart="ping:URL[,URL]"``: after an enqueue, wake ``offload wake-listener`` on
other hosts, which starts a drain there if none runs.

The enqueue only notes the job's queue and returns: one background thread per process
sends the wake-ups (see :mod:`offload.autostart.signing` for the body and signature), to
each URL in turn, each bounded by ``wake_timeout``. Queues noted while it sends go out
together in the next round, so a burst of enqueues costs a round or two, and once every
URL answered, a queue is not pinged again for :data:`~offload.autostart.locks.QUIET`
seconds. A server that is down or refuses costs a warning line (at most one per URL a
minute), never an exception in the request. At exit, pending wake-ups get about one
timeout per URL to go out (a script that enqueues and ends still wakes its servers).

A URL without a path is sent to ``/wake``.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from offload import logs
from offload.autostart import locks
from offload.autostart.signing import SIGNATURE_HEADER, make_body, sign
from offload.settings import Settings

__all__ = ["Pinger", "Target", "send_wake"]

#: Seconds between two warnings about the same URL.
WARN_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class Target:
    """One listener: ``http://host:port/path``."""

    url: str
    https: bool
    host: str
    port: int | None
    path: str

    @classmethod
    def of(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
        path = parts.path if parts.path not in ("", "/") else "/wake"
        if parts.query:
            path += "?" + parts.query
        return cls(url, parts.scheme == "https", parts.hostname, parts.port, path)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a listener said: its HTTP status and, for 202, the queues it started."""

    status: int
    started: tuple[str, ...] = ()
    error: str = ""


def send_wake(target: Target, queues: Iterable[str], secret: str | None, timeout: float) -> Answer:
    """Send one wake-up; raises OSError or HTTPException when the server cannot be reached
    or answers nonsense, within about ``timeout`` seconds."""
    body = make_body(queues)
    headers = {"Content-Type": "application/json", "User-Agent": "offload-wake/1"}
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    deadline = time.monotonic() + timeout
    kind = http.client.HTTPSConnection if target.https else http.client.HTTPConnection
    conn = kind(target.host, target.port, timeout=timeout)
    try:
        conn.connect()
        if conn.sock is not None:  # what is left of the timeout, not a fresh one per step
            conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read(4096)
    finally:
        conn.close()
    return _answer(response.status, data)


def _answer(status: int, data: bytes) -> Answer:
    try:
        parsed = json.loads(data.decode("utf-8")) if data else {}
    except (UnicodeDecodeError, ValueError):
        parsed = None
    if not isinstance(parsed, dict):
        return Answer(status, error=f"the answer is not a JSON object: {data[:120]!r}")
    if status != 202:
        error = parsed.get("error")
        return Answer(status, error=error[:200] if isinstance(error, str) else "")
    started = parsed.get("started", [])
    if not isinstance(started, list) or not all(isinstance(q, str) for q in started):
        return Answer(status, error='the answer\'s "started" is not a list of queue names')
    return Answer(status, tuple(q[:48] for q in started[:64]))


class Pinger:
    """Sends one process's wake-ups in the background. See the module docstring."""

    def __init__(self, settings: Settings) -> None:
        urls = [u.strip() for u in settings.autostart[len("ping:") :].split(",")]
        self.targets = [Target.of(url) for url in urls]
        self.secret = settings.wake_secret
        self.timeout = settings.wake_timeout
        #: queue -> monotonic moment until which it need not be pinged (the hot path).
        self._quiet_until: dict[str, float] = {}
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._sending = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._warned: dict[str, float] = {}
        #: Rounds sent, and rounds every listener answered (for tests and benchmarks).
        self.rounds = 0
        self.answered = 0
        atexit.register(self.flush)

    def wake(self, queues: Iterable[str]) -> None:
        """Note ``queues`` for the sender thread; never blocks on the network."""
        now = time.monotonic()
        quiet = self._quiet_until
        due = [q for q in queues if quiet.get(q, 0.0) <= now]
        if not due:
            return
        with self._cond:
            if self._pid != os.getpid():  # a forked child has no sender thread
                self._pid = os.getpid()
                self._thread = None
                self._sending = False
            self._pending.update(due)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="offload-autostart-ping", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending or being sent (at most ``timeout``, default about
        one ``wake_timeout`` per URL); whether everything went out."""
        if timeout is None:
            timeout = self.timeout * len(self.targets) + 0.5
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._thread is None or self._pid != os.getpid():
                return not self._pending
            while self._pending or self._sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                queues = sorted(self._pending)
                self._pending.clear()
                self._sending = True
            try:
                results = [self._send(target, queues) for target in self.targets]
                self.rounds += 1
                if all(results):
                    self.answered += 1
                    until = time.monotonic() + locks.QUIET
                    for queue in queues:
                        self._quiet_until[queue] = until
            except Exception as exc:  # a bug must not end the thread: later wakes need it
                logs.log("autostart.ping_error", "error", error=f"{type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._sending = False
                    self._cond.notify_all()

    def _send(self, target: Target, queues: list[str]) -> bool:
        try:
            answer = send_wake(target, queues, self.secret, self.timeout)
        except (OSError, http.client.HTTPException) as exc:
            self._warn(target, f"{type(exc).__name__}: {exc}")
            return False
        if answer.status != 202:
            hint = " (check OFFLOAD_WAKE_SECRET on both sides)" if answer.status == 401 else ""
            self._warn(target, f"HTTP {answer.status}{hint}: {answer.error}")
            return False
        if answer.error:
            self._warn(target, answer.error)
            return False
        if answer.started:
            logs.log("autostart.woken", url=target.url, started=",".join(answer.started))
        return True

    def _warn(self, target: Target, why: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(target.url, -WARN_EVERY) < WARN_EVERY:
            return
        self._warned[target.url] = now
        logs.log(
            "autostart.ping_failed", "warning", url=target.url, error=why,
            reason="the job stays queued; the listener's host runs it once woken or polled",
        )  # fmt: skip
