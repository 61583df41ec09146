"""Stop requests for a supervisor: SIGTERM, SIGINT, or a call from another thread.

Python runs signal handlers between bytecodes of the main thread, but a blocking
``select`` is restarted after a signal (PEP 475), so a handler alone would leave the
supervisor asleep until its next timeout. The handler records the signal and the
interpreter's wake-up fd writes a byte into a socket the supervisor's select watches.
"""

from __future__ import annotations

import signal
import socket
import threading
from types import FrameType
from typing import Any


class StopRequests:
    """Collects stop requests and wakes the supervisor's loop when one arrives."""

    def __init__(self) -> None:
        self._requests: list[int] = []
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._previous: dict[int, Any] = {}
        self._previous_wakeup = -1

    def fileno(self) -> int:
        """The descriptor that becomes readable when a request arrives."""
        return self._read.fileno()

    def fds(self) -> list[int]:
        """Both ends of the wake-up socket (for a forked child to close)."""
        return [self._read.fileno(), self._write.fileno()]

    def install(self) -> None:
        """Catch SIGTERM and SIGINT (only possible in the main thread; elsewhere,
        :meth:`request` is the way to stop)."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous_wakeup = signal.set_wakeup_fd(
            self._write.fileno(), warn_on_full_buffer=False
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def request(self, signum: int) -> None:
        """Ask for a stop as if ``signum`` had arrived; safe from any thread."""
        self._requests.append(signum)
        try:
            self._write.send(b"\0")
        except OSError:
            pass  # a full buffer means the loop has wake-ups pending already

    def take(self) -> list[int]:
        """The signals received since the last call, oldest first."""
        try:
            while self._read.recv(512):
                pass
        except OSError:
            pass  # nothing left to read
        taken, self._requests = self._requests, []
        return taken

    def close(self) -> None:
        """Restore the previous handlers and close the socket."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if self._previous:
            signal.set_wakeup_fd(self._previous_wakeup)
        self._previous.clear()
        self._read.close()
        self._write.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._requests.append(signum)
