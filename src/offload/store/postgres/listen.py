"""The PostgreSQL store's wake-ups: ``NOTIFY`` payloads and the ``LISTEN`` waiter.

A committed enqueue sends ``NOTIFY`` on the schema's channel with the queue names as
payload (empty: any queue). A :class:`ListenWaiter` holds one dedicated connection that
``LISTEN``\\s; if it drops, waiting falls back to the poll timeout and the connection is
made again later, with jittered backoff.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from offload.store.base import Waiter

Conn = psycopg.Connection[tuple[Any, ...]]

#: NOTIFY payloads must stay under 8000 bytes; past this, an empty payload means "any".
MAX_PAYLOAD = 4000


def channel(schema: str) -> str:
    """The NOTIFY channel of the store in ``schema``."""
    return f"offload_{schema}"


def payload(queues: Iterable[str]) -> str:
    """The NOTIFY payload naming ``queues`` (empty, meaning any queue, when too long)."""
    text = ",".join(sorted(set(queues)))
    return text if len(text.encode()) <= MAX_PAYLOAD else ""


class ListenWaiter(Waiter):
    """Blocks on ``LISTEN`` on a dedicated connection (never one of the pool's).

    When that connection is lost, :meth:`wait` sleeps out its timeout (the worker polls)
    and tries to connect again later, backing off with jitter. After a reconnection it
    reports a wake-up, since notifications sent meanwhile were lost.
    """

    def __init__(
        self,
        url: str,
        channel: str,
        queues: Sequence[str],
        connect_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.channel = channel
        self.queues = set(queues)
        # Reconnecting must not hold up the worker's loop for long: 2 s unless the url
        # names its own connect_timeout.
        timeout = conninfo_to_dict(url).get("connect_timeout", 2)
        self._kwargs = {**(connect_kwargs or {}), "connect_timeout": timeout, "autocommit": True}
        self._conn: Conn | None = None
        self._pid = os.getpid()
        self._abandoned: list[Conn] = []
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._closed = False
        self._connect()

    @property
    def connected(self) -> bool:
        """True while the LISTEN connection is up (as far as this process knows)."""
        return self._conn is not None and not self._conn.closed

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the LISTEN connection (for tests and diagnostics)."""
        return self._conn.info.backend_pid if self._conn is not None else None

    def _connect(self) -> bool:
        try:
            conn: Conn = psycopg.connect(self.url, **self._kwargs)
        except psycopg.Error:
            self._schedule_retry()
            return False
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except psycopg.Error:
            with contextlib.suppress(psycopg.Error):
                conn.close()
            self._schedule_retry()
            return False
        self._conn = conn
        self._backoff = 0.0
        return True

    def _schedule_retry(self) -> None:
        self._backoff = min(30.0, max(0.25, self._backoff * 2))
        self._next_attempt = time.monotonic() + self._backoff * random.uniform(0.5, 1.5)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
        self._schedule_retry()

    def selectable(self) -> int | None:
        """The LISTEN connection's socket while connected (in the process that opened
        it): a notification arriving makes it readable."""
        conn = self._conn
        if conn is None or conn.closed or self._pid != os.getpid():
            return None
        try:
            return conn.fileno()
        except psycopg.Error:
            return None

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        if self._pid != os.getpid():
            # Inherited over a fork: the socket belongs to the parent. Never close it here.
            if self._conn is not None:
                self._abandoned.append(self._conn)
            self._conn = None
            self._pid = os.getpid()
            self._next_attempt = 0.0
        if self._conn is None:
            if not self._closed and time.monotonic() >= self._next_attempt and self._connect():
                return True  # notifications sent while disconnected are lost: look now
            _sleep_until(deadline)
            return False
        try:
            while True:  # at least one look, so wait(0) still reads what has arrived
                remaining = max(0.0, deadline - time.monotonic())
                for note in self._conn.notifies(timeout=remaining):
                    if not note.payload or self.queues.intersection(note.payload.split(",")):
                        return True
                if time.monotonic() >= deadline:
                    return False
        except psycopg.Error:
            self._drop()
            _sleep_until(deadline)
            return False

    def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(psycopg.Error):
                conn.close()


def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
