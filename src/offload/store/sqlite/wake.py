"""The SQLite store's wake-ups: SQLite has no notification channel, so workers on the
same machine wake each other through Unix datagram sockets.

Each idle worker binds a Unix datagram socket in a directory named after the database
file. After an enqueue commits, the enqueuer sends one tiny datagram (the queue name) to
every socket there, so an idle worker starts the job within a millisecond instead of at
its next poll. The datagram carries no job data: a lost or stale one costs nothing, and
polling remains the fallback. Sockets of dead workers are removed by whoever finds them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import select
import socket
import tempfile
from collections.abc import Iterable, Sequence

from offload.store.base import Waiter


def wake_dir(database_path: str) -> str:
    """The folder of wake sockets for one database file (short, to fit AF_UNIX limits)."""
    real = os.path.realpath(database_path)
    digest = hashlib.sha1(real.encode(), usedforsecurity=False).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"offload-{os.getuid()}", digest)


class WakeSender:
    """Sends wake-up datagrams; caches the folder listing until the folder changes."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._mtime = -1
        self._targets: list[str] = []
        self._sock: socket.socket | None = None
        self._pid = -1

    def wake(self, queues: Iterable[str]) -> None:
        try:
            mtime = os.stat(self.folder).st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            self._mtime = mtime
            self._targets = [
                os.path.join(self.folder, n) for n in os.listdir(self.folder) if n.endswith(".sock")
            ]
        if not self._targets:
            return
        sock = self._socket()
        payload = ",".join(sorted(set(queues))).encode()[:512]
        for target in self._targets:
            try:
                sock.sendto(payload, target)
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    with contextlib.suppress(OSError):
                        os.unlink(target)  # the worker that bound it is gone
                # EAGAIN: its buffer is full, so it has plenty of wake-ups pending.

    def _socket(self) -> socket.socket:
        if self._sock is None or self._pid != os.getpid():
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            self._pid = os.getpid()
        return self._sock

    def close(self) -> None:
        if self._sock is not None and self._pid == os.getpid():
            self._sock.close()
        self._sock = None


class SocketWaiter(Waiter):
    """Blocks on a bound datagram socket; woken by :class:`WakeSender`."""

    def __init__(self, folder: str, queues: Sequence[str]) -> None:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self.path = os.path.join(folder, f"{os.getpid()}-{os.urandom(4).hex()}.sock")
        self.queues = set(queues)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.setblocking(False)

    def selectable(self) -> int | None:
        return self._sock.fileno()

    def wait(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
        if not ready:
            return False
        return self.drain()

    def drain(self) -> bool:
        """Read every pending datagram; True if one names a queue we serve."""
        relevant = False
        while True:
            try:
                data = self._sock.recv(1024)
            except BlockingIOError:
                return relevant
            except OSError:
                return relevant
            names = data.decode(errors="replace").split(",")
            if not data or self.queues.intersection(names):
                relevant = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
