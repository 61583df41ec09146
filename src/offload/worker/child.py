"""A worker's child process: receives jobs over its pipe, runs them, reports back.

A child never touches the store. Everything it learns or reports goes through the pipe to
its supervisor, which batches the writes; job code that uses ``app.store`` itself (to
enqueue follow-up jobs, say) gets a connection of its own, opened in this process.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from collections.abc import Iterable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, NoReturn

from offload.execution import execute
from offload.reporters import PipeReporter
from offload.serialization import decode_options
from offload.types import ClaimedJob
from offload.worker import protocol
from offload.worker.limits import address_space_limit, peak_rss_self, set_parent_death_signal

if TYPE_CHECKING:
    from offload.app import Offload


class Child:
    """The loop of one child process (see :func:`child_main`)."""

    def __init__(self, app: Offload, conn: Connection, worker_id: str) -> None:
        self.app = app
        self.conn = conn
        self.worker_id = worker_id
        self._inbox: collections.deque[protocol.Message] = collections.deque()
        #: Jobs someone asked to cancel (a job of a batch may be asked before it starts).
        self._cancels: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def send(self, **message: Any) -> None:
        """Send one message to the supervisor (blocks while the pipe is full)."""
        try:
            self.conn.send_bytes(protocol.encode(message))
        except OSError:
            _orphaned()

    def poll_cancels(self) -> set[str]:
        """Read waiting messages without blocking; the ids asked to cancel."""
        cancels = self._cancels
        try:
            while self.conn.poll(0):
                message = protocol.decode(self.conn.recv_bytes())
                if message.get("op") == "cancel":
                    cancels.add(str(message.get("job")))
                else:
                    self._inbox.append(message)
        except (EOFError, OSError):
            _orphaned()
        return cancels

    def serve(self) -> None:
        """Run jobs until told to stop or the supervisor goes away (pipe EOF)."""
        while True:
            message = self._inbox.popleft() if self._inbox else self._receive()
            if message is None or message.get("op") == "stop":
                return
            if message.get("op") == "run":
                jobs = [protocol.job_from_dict(data) for data in message["jobs"]]
                self._run_batch(jobs, message.get("start_by"))

    def _run_batch(self, jobs: list[ClaimedJob], start_by: float | None) -> None:
        """Run jobs in order; hand back, unstarted, those whose turn comes too late."""
        for index, job in enumerate(jobs):
            # The check follows the previous job's "done" (see protocol.py): the
            # supervisor relies on this order to know which job may still run.
            if index and start_by is not None and time.monotonic() >= start_by:
                rest = jobs[index:]
                self.send(
                    op="returned", jobs=[j.id for j in rest],
                    runs=[[j.id, j.attempt] for j in rest],
                )  # fmt: skip
                return
            self._run(job)

    def _receive(self) -> protocol.Message | None:
        try:
            return protocol.decode(self.conn.recv_bytes())
        except (EOFError, OSError):
            return None

    def _run(self, job: ClaimedJob) -> None:
        reporter = PipeReporter(job.id, job.attempt, self.send, self.poll_cancels)
        limit = decode_options(job.options).get("memory_limit") if job.options != "{}" else None
        started = time.perf_counter()
        with address_space_limit(limit if isinstance(limit, int) else None):
            outcome = execute(
                self.app, job, reporter, worker_id=self.worker_id,
                run_coroutine=self._run_coroutine,
            )  # fmt: skip
        self.send(
            op="done", outcome=protocol.outcome_to_dict(outcome), peak_rss=peak_rss_self(),
            seconds=time.perf_counter() - started,
        )  # fmt: skip
        self._cancels.discard(job.id)

    def _run_coroutine(self, awaitable: Any) -> Any:
        # One event loop per child, reused by every async job it runs: cheaper than
        # asyncio.run() per job, and loop-bound clients cached by the app keep working.
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)

        async def wrapper() -> Any:
            return await awaitable

        return self._loop.run_until_complete(wrapper())


def _orphaned() -> NoReturn:
    # The supervisor is gone (its pipe end closed), so nothing this job does can be
    # recorded: stop now rather than raise into job code. The lease will expire and
    # another worker runs the job again.
    os._exit(1)


def child_main(
    app: Offload, conn: Connection, worker_id: str, parent_pid: int, close_fds: Iterable[int]
) -> None:
    """Entry point of a forked child (the target of its ``multiprocessing.Process``)."""
    _detach_from_supervisor(parent_pid, close_fds)
    Child(app, conn, worker_id).serve()


def _detach_from_supervisor(parent_pid: int, close_fds: Iterable[int]) -> None:
    # The fork copied the supervisor's signal handlers and its wake-up fd; left alone, a
    # signal to this child would run the supervisor's shutdown logic here and write into
    # the supervisor's wake-up pipe. A child dies on SIGTERM (the timeout path) and
    # ignores SIGINT, which a terminal sends to the whole process group: the supervisor
    # decides what happens to running jobs on Ctrl-C.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    # A process group of its own: a timeout kills the job's own subprocesses with it, and
    # a terminal's Ctrl-C reaches only the supervisor, which decides about running jobs.
    try:
        os.setpgid(0, 0)
    except OSError:
        pass  # already a group leader
    # If the supervisor is SIGKILLed, nobody else would stop this child: the kernel does.
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the death signal was armed
    # Pipe ends of sibling children and the supervisor's sockets: holding them open here
    # would hide a sibling's or the supervisor's death from whoever waits for EOF.
    for fd in close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
