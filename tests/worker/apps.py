"""Task apps for worker tests. Every task writes ledger rows (job id, attempt, pid, phase)
into a separate SQLite file named by ``OFFLOAD_TEST_LEDGER``: the oracle for lost and
duplicated runs, independent of the store under test.

``app`` knows every task; ``small_app`` lacks ``extra``, to test unknown tasks. Both read
``OFFLOAD_URL`` when built; tests in this process point them at their own store.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sqlite3
import subprocess
import time

from offload import Cancel, JobContext, Offload, current_job
from tests.fixtures.ledger import ledger

app = Offload()
small_app = Offload()


def _gate(path: str) -> None:
    # Job code may poll: this is the "long job" of the tests, released by the test.
    while not os.path.exists(path):
        time.sleep(0.02)


def record(n: int = 0) -> int:
    """Succeed at once."""
    ledger("done")
    return n


def gated(gate: str) -> str:
    """Run until the file ``gate`` exists."""
    ledger("start")
    _gate(gate)
    ledger("done")
    return "opened"


def pid() -> int:
    """Return the pid of the child that ran the job."""
    ledger("done")
    return os.getpid()


def hang() -> None:
    """Block in C with SIGTERM ignored: only SIGKILL ends it."""
    ledger("start")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        signal.pause()


def spawn_and_hang() -> None:
    """Start a subprocess, then block: a timeout must end both."""
    child = subprocess.Popen(["sleep", "60"])
    ledger("start")
    _ledger_pid(child.pid, "grandchild")
    while True:
        signal.pause()


def _ledger_pid(pid: int, phase: str) -> None:
    ctx = current_job()
    assert ctx is not None
    conn = sqlite3.connect(os.environ["OFFLOAD_TEST_LEDGER"], timeout=30, isolation_level=None)
    try:
        conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?)", (ctx.id, ctx.attempt, pid, phase))
    finally:
        conn.close()


def segfault() -> None:
    """Crash the child process."""
    ledger("start")
    ctypes.string_at(0)


def exit_hard(code: int) -> None:
    ledger("start")
    os._exit(code)


def allocate(megabytes: int) -> int:
    ledger("start")
    block = bytearray(megabytes * 1024 * 1024)
    ledger("done")
    return len(block)


def until_cancelled(ctx: JobContext) -> None:
    """Loop until someone cancels the job."""
    ledger("start")
    while not ctx.cancel_requested:
        time.sleep(0.02)
    ledger("done")
    raise Cancel("saw cancel_requested")


def reporting(ctx: JobContext, gate: str) -> str:
    """Report progress, a log line and a saved value, then wait for ``gate``."""
    ctx.progress(1, total=4, message="first step")
    ctx.message("hello from the child")
    ctx.save("partial", {"rows": 10})
    _gate(gate)
    ledger("done")
    return "reported"


async def async_add(a: int, b: int) -> int:
    ledger("done")
    return a + b


async def loop_identity() -> list[int]:
    """The child's pid and the identity of the event loop running this job."""
    import asyncio

    ledger("done")
    return [os.getpid(), id(asyncio.get_running_loop())]


def sleep_for(seconds: float) -> float:
    """Run for ``seconds``."""
    ledger("start")
    time.sleep(seconds)
    ledger("done")
    return seconds


def always_fails() -> None:
    """Raise, every time (its retries are an hour apart, so a drain runs it once)."""
    ledger("start")
    raise RuntimeError("always fails")


def extra() -> str:
    ledger("done")
    return "extra"


for _app in (app, small_app):
    _app.task(record)
    _app.task(gated)
    _app.task(pid)
    _app.task(hang, retries=0, timeout=1)
    _app.task(spawn_and_hang, retries=0, timeout=1)
    _app.task(segfault)
    _app.task(exit_hard, retries=0)
    _app.task(allocate, retries=0, memory_limit=64 * 1024 * 1024)
    _app.task(until_cancelled, context=True)
    _app.task(reporting, context=True)
    _app.task(async_add)
    _app.task(loop_identity)
    _app.task(sleep_for)
    _app.task(always_fails, retries=3, backoff=3600)
app.task(extra)
