"""The demo's tasks: a bulk import split into chunks, and a few mails.

Run a worker for them with ``offload worker --app examples.demo_app:app``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time

from offload import JobContext, Offload

app = Offload()  # OFFLOAD_URL, else sqlite:///offload.db in the working directory

IMPORT_DB = os.environ.get("DEMO_IMPORT_DB", "demo-imported.db")


@app.task(queue="imports", context=True, retries=2)
def import_chunk(ctx: JobContext, first: int, count: int) -> int:
    """Parse and store ``count`` records starting at ``first``; report progress as it goes."""
    rows = []
    for n, record in enumerate(range(first, first + count), 1):
        digest = hashlib.sha256(f"record-{record}".encode()).hexdigest()
        rows.append((record, digest))
        if n % 25 == 0:
            ctx.progress(n, total=count)
    with sqlite3.connect(IMPORT_DB, timeout=30) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, digest TEXT)")
        # Idempotent: a chunk that runs twice (at-least-once) writes the same rows again.
        conn.executemany("INSERT OR REPLACE INTO records VALUES (?, ?)", rows)
    ctx.progress(count, total=count, message=f"records {first}-{first + count - 1} stored")
    return count


@app.task(queue="mail", retries=5, timeout=30)
def send_mail(to: str, subject: str) -> str:
    """Stand-in for an SMTP call: slow, I/O-bound."""
    time.sleep(0.2)
    return f"sent {subject!r} to {to}"
