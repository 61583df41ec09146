"""A forked child process as its supervisor holds it: :class:`ChildProcess` (the process,
its pipe, its signals, its memory) and :func:`fork`, which starts one.

Nothing here knows about jobs, so any child a supervisor forks (a job pool's, a service's)
can use it; the job bookkeeping of a pool's child is :class:`offload.worker.slots.Slot`.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from offload.worker import protocol
from offload.worker.limits import rss_of

if TYPE_CHECKING:
    from offload.app import Offload

#: What a forked child runs: ``target(app, conn, worker_id, parent_pid, close_fds)``.
ChildMain = Callable[["Offload", Connection, str, int, Sequence[int]], None]


@dataclass
class ChildProcess:
    """One forked child: its process, the supervisor's end of its pipe, and what the
    supervisor knows of it."""

    process: BaseProcess
    conn: Connection
    #: Its process-table id: ``<worker id>/<pid>``.
    process_id: str
    #: Wall-clock time it was started.
    started_at: float
    peak_rss: int = 0
    #: The supervisor signalled it (timeout, lost lease, shutdown): its death is expected.
    signalled: bool = False
    #: Its pipe is closed or broken: nothing more can be read from or sent to it.
    eof: bool = False
    #: It exited and was reaped.
    dead: bool = False

    @property
    def pid(self) -> int:
        """The child's process id (0 before it started)."""
        return self.process.pid or 0

    @property
    def sentinel(self) -> int:
        """A descriptor that becomes ready when the child exits."""
        return self.process.sentinel

    @property
    def exitcode(self) -> int | None:
        """Its exit code, negative for a signal; None while it runs."""
        return self.process.exitcode

    def join(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for it to exit."""
        self.process.join(timeout=timeout)

    def has_message(self) -> bool:
        """A message is waiting in the pipe (raises EOFError or OSError once it broke)."""
        return not self.eof and self.conn.poll(0)

    def receive(self) -> protocol.Message:
        """The next message (check :meth:`has_message` first; raises as it does)."""
        return protocol.decode(self.conn.recv_bytes())

    def send(self, message: protocol.Message) -> bool:
        """Send one message; False (and ``eof``) if the pipe is gone."""
        return self.send_encoded(protocol.encode(message))

    def send_encoded(self, data: bytes) -> bool:
        """Send one message already encoded (:func:`protocol.encode`); False (and
        ``eof``) if the pipe is gone."""
        try:
            self.conn.send_bytes(data)
            return True
        except (OSError, ValueError):
            self.eof = True
            return False

    def signal(self, signum: int) -> None:
        """Signal the child and every process it started (its process group); a child
        that already exited is not an error."""
        if self.dead or not self.pid:
            return
        self.signalled = True
        try:
            os.killpg(self.pid, signum)
            return
        except (ProcessLookupError, PermissionError):
            pass  # not a group leader yet (just forked), or the group is gone
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        """SIGTERM to its process group."""
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to its process group."""
        self.signal(signal.SIGKILL)

    def rss(self) -> int:
        """Its resident size in bytes now (0 if it is gone)."""
        return rss_of(self.pid)

    def sample_rss(self) -> int:
        """:meth:`rss`, also noted in ``peak_rss``."""
        rss = rss_of(self.pid)
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def note_peak_rss(self, rss: int) -> None:
        """The child reported its own peak resident size."""
        self.peak_rss = max(self.peak_rss, rss)

    def close(self) -> None:
        """Close the supervisor's end of the pipe (once the child is reaped)."""
        self.conn.close()


def fork(
    app: Offload,
    target: ChildMain,
    *,
    worker_id: str,
    name: str,
    close_fds: Sequence[int],
) -> ChildProcess:
    """Fork a child running ``target`` with a duplex pipe to this process.

    The child closes ``close_fds`` (the descriptors of its siblings and of the
    supervisor) and its parent's end of the new pipe. The app's store is closed first:
    no store connection may cross the fork (see :mod:`offload.worker.supervisor`).
    Raises OSError if the pipe or the fork cannot be made (no memory, too many processes
    or descriptors); nothing is left open then.
    """
    mp = multiprocessing.get_context("fork")
    parent_conn, child_conn = mp.Pipe(duplex=True)
    try:
        inherited = [*close_fds, parent_conn.fileno()]
        app.close()
        process = mp.Process(
            target=target, args=(app, child_conn, worker_id, os.getpid(), inherited), name=name
        )
        process.start()
    except BaseException:
        parent_conn.close()
        child_conn.close()
        raise
    child_conn.close()
    return ChildProcess(
        process=process, conn=parent_conn, process_id=f"{worker_id}/{process.pid}",
        started_at=time.time(),
    )  # fmt: skip
