"""The bulk import's tasks: split a file into chunks, import the chunks in parallel
(a chunk too large splits itself into chunks of the same group), then post-process.

Run a worker for them with ``offload worker --app examples.bulk_import_app:app``;
``examples/bulk_import.py`` builds the groups and waits for the result.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3

from offload import JobContext, Offload

app = Offload()  # OFFLOAD_URL, else sqlite:///offload.db in the working directory

#: Records imported by one chunk job; a larger range splits itself in two.
CHUNK = 500
TARGET_DB = os.environ.get("BULK_IMPORT_DB", "bulk-imported.db")


def _target() -> sqlite3.Connection:
    conn = sqlite3.connect(TARGET_DB, timeout=30)
    conn.execute("CREATE TABLE IF NOT EXISTS records (line INTEGER PRIMARY KEY, digest TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS summary (id INTEGER PRIMARY KEY, body TEXT)")
    return conn


@app.task(queue="imports", context=True)
def split(ctx: JobContext, path: str) -> int:
    """Stage 1's first member: count the file's lines and add one job for all of them,
    which splits itself further. Returns the number of lines."""
    with open(path, encoding="utf-8") as f:
        lines = sum(1 for _ in f)
    group = ctx.group
    assert group is not None, "split runs as a member of the import group"
    group.add(import_range, path, 0, lines)
    return lines


@app.task(queue="imports", context=True, retries=2)
def import_range(ctx: JobContext, path: str, first: int, count: int) -> int:
    """Import lines ``first`` .. ``first + count - 1``, or, when that is more than
    :data:`CHUNK`, add two jobs for its halves to the same group (the group completes
    only when those are done too)."""
    if count > CHUNK:
        group = ctx.group
        assert group is not None
        half = count // 2
        group.add_many(import_range, [(path, first, half), (path, first + half, count - half)])
        return 0
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n >= first + count:
                break
            if n >= first:
                rows.append((n, hashlib.sha256(line.encode()).hexdigest()))
    with _target() as conn:
        # Idempotent: a chunk that runs twice (at-least-once) writes the same rows again.
        conn.executemany("INSERT OR REPLACE INTO records VALUES (?, ?)", rows)
    ctx.progress(len(rows), total=count, message=f"lines {first}-{first + count - 1}")
    return len(rows)


@app.task(queue="imports")
def imported(group_id: str, succeeded: int, failed: int) -> None:
    """Stage 1's callback: runs once, when every chunk (added ones too) is final."""
    print(f"import group {group_id}: {succeeded} jobs succeeded, {failed} failed", flush=True)


@app.task(queue="imports")
def post_process() -> dict[str, int]:
    """Stage 2: runs once the import is complete (and only if nothing in it failed)."""
    with _target() as conn:
        (count,) = conn.execute("SELECT count(*) FROM records").fetchone()
        (distinct,) = conn.execute("SELECT count(DISTINCT digest) FROM records").fetchone()
        summary = {"records": int(count), "distinct": int(distinct)}
        conn.execute("INSERT OR REPLACE INTO summary VALUES (1, ?)", (json.dumps(summary),))
    return summary


@app.task(queue="imports")
def finished(group_id: str, succeeded: int, failed: int) -> None:
    """Stage 2's callback."""
    print(f"post-processing group {group_id}: {succeeded} succeeded, {failed} failed", flush=True)
