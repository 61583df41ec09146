"""The task app of the fault-injection suite.

Every task writes ``(job id, attempt, pid, phase)`` to a ledger (a SQLite file of its own,
named by ``OFFLOAD_TEST_LEDGER``) before it returns: ``start`` when it begins, ``done``
just before it returns. The ledger is the oracle for lost, duplicated and phantom jobs;
it never reads the store under test.

``app`` knows every task; ``small_app`` lacks ``later`` (a task only a newer worker has).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sqlite3
import time

from offload import JobContext, Offload, current_job

app = Offload()
small_app = Offload()

_ledger: tuple[int, sqlite3.Connection] | None = None
_held: list[bytearray] = []


def _ledger_conn() -> sqlite3.Connection:
    """One connection per process (a forked child opens its own)."""
    global _ledger
    if _ledger is None or _ledger[0] != os.getpid():
        # The file is made (WAL, table) by create_ledger() before any worker starts.
        conn = sqlite3.connect(os.environ["OFFLOAD_TEST_LEDGER"], timeout=60, isolation_level=None)
        # WAL with NORMAL survives any process crash; only a power cut could lose rows.
        conn.execute("PRAGMA synchronous=NORMAL")
        _ledger = (os.getpid(), conn)
    return _ledger[1]


def create_ledger(path: str) -> None:
    """Make the ledger file: WAL mode (set once: switching needs an exclusive lock) and
    the ``runs`` table."""
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS runs (job TEXT, attempt INT, pid INT, phase TEXT)")
    finally:
        conn.close()


def ledger(phase: str) -> None:
    """Append one row for the running job."""
    ctx = current_job()
    assert ctx is not None
    _ledger_conn().execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?)", (ctx.id, ctx.attempt, os.getpid(), phase)
    )


def work(batch: str, n: int, ms: int = 0) -> int:
    """A short job: ``ms`` milliseconds of work between its two ledger rows."""
    ledger("start")
    if ms:
        time.sleep(ms / 1000)
    ledger("done")
    return n


def ignore_term() -> None:
    """Ignore SIGTERM and keep running Python code."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ledger("start")
    while True:
        time.sleep(0.05)


def sleep_forever() -> None:
    """Sleep, with the default SIGTERM handling."""
    ledger("start")
    time.sleep(3600)


def blocked_in_c() -> None:
    """Block inside libc's pause() with SIGTERM ignored: only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ledger("start")
    libc = ctypes.CDLL(None)
    while True:
        libc.pause()


def segfault() -> None:
    """Crash the child process (read address 0)."""
    ledger("start")
    ctypes.string_at(0)


def leak(megabytes: int) -> int:
    """Keep ``megabytes`` of touched memory alive in the child after the job returns."""
    ledger("start")
    block = bytearray(megabytes * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    _held.append(block)
    ledger("done")
    return os.getpid()


def hog(megabytes: int) -> int:
    """Allocate far beyond the task's memory_limit."""
    ledger("start")
    block = bytearray(megabytes * 1024 * 1024)
    ledger("done")
    return len(block)


def later(n: int) -> int:
    """Known only to ``app``: a worker of ``small_app`` must leave it queued."""
    ledger("start")
    ledger("done")
    return n


def limited(batch: str, n: int, ms: int, slots: str) -> int:
    """A job run under the limit ("api", 2): while it works, its pid is in a file of the
    folder ``slots``; it counts the files of live processes there (itself included) and
    writes ``over`` to the ledger if more than two limited jobs run at once."""
    ledger("start")
    mine = os.path.join(slots, f"{os.getpid()}")
    with open(mine, "w") as f:
        f.write(str(os.getpid()))
    try:
        deadline = time.monotonic() + ms / 1000
        while time.monotonic() < deadline:
            live = 0
            for name in os.listdir(slots):
                try:
                    os.kill(int(name), 0)
                    live += 1
                except (ProcessLookupError, ValueError):
                    pass
            if live > 2:
                ledger("over")
            time.sleep(0.005)
    finally:
        os.unlink(mine)
    ledger("done")
    return n


for _app in (app, small_app):
    _app.task(work, retries=2)
    _app.task(ignore_term, retries=0, timeout=1)
    _app.task(sleep_forever, retries=0, timeout=1)
    _app.task(blocked_in_c, retries=0, timeout=1)
    _app.task(segfault)
    _app.task(leak, retries=0)
    _app.task(hog, retries=0, memory_limit=64 * 1024 * 1024)
app.task(later)
app.task(limited, retries=5, limit=("api", 2))


# -- groups ---------------------------------------------------------------------------------


@app.task(context=True)
def fan_out(ctx: JobContext, depth: int, width: int, ms: int = 0) -> int:
    """A group member that adds ``width`` members (each fanning out to ``depth - 1``)
    to its own group, then works ``ms`` milliseconds: a kill then hits it after its adds
    and before its outcome."""
    ledger("start")
    if depth > 0:
        group = ctx.group
        assert group is not None, "fan_out runs as a member of a group"
        group.add_many(fan_out, [(depth - 1, width, ms)] * width)
    if ms:
        time.sleep(ms / 1000)
    ledger("done")
    return depth


@app.task
def group_done(group_id: str, succeeded: int, failed: int) -> None:
    """A group's callback: its counts go to the ledger in the phase of its row."""
    ledger(f"callback {group_id} {succeeded} {failed}")
