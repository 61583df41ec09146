"""Retention figures: the bytes a finished job takes in each store, and what pruning costs
(how long one batch holds SQLite's write lock, and what a writer waits meanwhile).

    .venv/bin/python -m bench.prune                   # 20,000 jobs, both stores
    .venv/bin/python -m bench.prune --quick           # 2,000 jobs
    .venv/bin/python -m bench.prune --stores sqlite --jobs 50000 --batch 500

Each job is what a typical web app stores: a task with two arguments and a keyword, a
small JSON result, the two events of one successful run (``started``, ``succeeded``) and
three log lines of about 40 characters. They are written through the store's own calls
(enqueue, claim, outcome), as a worker writes them, then aged 40 days in SQL and pruned
in batches of ``--batch`` by :meth:`Store.job_prune_expired` with the pause a worker
and ``offload prune`` leave between batches (nine times the batch's duration), while
another thread enqueues one job at a time and times each enqueue.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.run import postgres_urls, sqlite_urls
from offload.ids import uuid7
from offload.retention import RetentionPolicy, pause_after
from offload.settings import Settings
from offload.store import Store, open_store
from offload.store.sqlite import SQLiteStore
from offload.tasks import TaskOptions
from offload.types import JobState, MessageAdd, NewJob, Outcome

DAY = 86400.0
TASK = "shop.jobs.send_receipt"
#: Jobs written per transaction while filling the store.
CHUNK = 1_000


def fill(store: Store, n: int) -> None:
    """``n`` finished jobs of the typical shape (see the module docstring)."""
    options = TaskOptions(name=TASK).encoded
    for first in range(0, n, CHUNK):
        count = min(CHUNK, n - first)
        jobs = [
            NewJob(uuid7(), TASK, "default", json.dumps([1000 + i, f"customer{i}@example.com"]),
                   json.dumps({"template": "receipt-v2"}), options=options, max_attempts=4)
            for i in range(first, first + count)
        ]  # fmt: skip
        store.job_insert_many(jobs)
        claimed = store.job_claim(
            worker_id="bench:1:abc", queues=["default"], tasks=[TASK], limit=count, lease=60.0
        )
        messages = [
            MessageAdd(c.id, c.attempt, f"rendered receipt {c.id[:8]}, part {line} of 3")
            for c in claimed
            for line in range(3)
        ]
        outcomes = [
            Outcome(c.id, c.attempt, JobState.SUCCEEDED,
                    json.dumps({"sent": True, "message_id": uuid7()}))
            for c in claimed
        ]  # fmt: skip
        store.job_write(outcomes=outcomes, messages=messages)


def age_all(store: Store, seconds: float) -> None:
    statement = "UPDATE {jobs} SET finished_at = finished_at - %s"
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path, isolation_level=None) as conn:
            conn.execute(statement.format(jobs="offload_jobs").replace("%s", "?"), (seconds,))
        return
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as pg:
        pg.execute(statement.format(jobs="offload.jobs").encode(), (seconds,))


def size(store: Store, compact: bool) -> int:
    """Bytes the store's tables and indexes take (``compact``: after VACUUM)."""
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path, isolation_level=None) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if compact:
                conn.execute("VACUUM")
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            page = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * page)
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as pg:
        if compact:
            pg.execute("VACUUM FULL offload.jobs, offload.events, offload.messages")
        row = pg.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'offload' AND c.relname IN ('jobs', 'events', 'messages')"
        ).fetchone()
    return int(row[0]) if row else 0


class Enqueuer(threading.Thread):
    """Enqueues one job at a time on its own store handle, timing each call."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.store = open_store(settings)
        self.times: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                began = time.perf_counter()
                self.store.job_insert_many([NewJob(uuid7(), "bench.other", "other")])
                self.times.append(time.perf_counter() - began)
                time.sleep(0.002)
        finally:
            self.store.close()


def timed_writes(store: Store) -> list[float]:
    """For SQLite, record how long each write transaction held the lock: from the moment
    ``BEGIN IMMEDIATE`` returned to the end of ``COMMIT``."""
    held: list[float] = []
    if not isinstance(store, SQLiteStore):
        return held
    db = store.db
    original = db.write

    def write(fn: Callable[[sqlite3.Connection], Any]) -> Any:
        began: list[float] = []

        def inner(c: sqlite3.Connection) -> Any:
            began.append(time.perf_counter())
            return fn(c)

        try:
            return original(inner)
        finally:
            if began:
                held.append(time.perf_counter() - began[-1])

    db.write = write  # type: ignore[method-assign]
    return held


def ms(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if q >= 1:
        return round(max(values) * 1000, 2)
    return round(
        statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1] * 1000, 2
    )


def measure(backend: str, url: str, jobs: int, batch: int) -> dict[str, Any]:
    settings = Settings(url=url, min_free_bytes=0)
    store = open_store(settings)
    store.migrate()
    empty = size(store, compact=True)
    began = time.perf_counter()
    fill(store, jobs)
    filled_s = time.perf_counter() - began
    written = size(store, compact=False) - empty
    compacted = size(store, compact=True) - empty
    age_all(store, 40 * DAY)

    # Writers alone, then writers while batch after batch is pruned back to back.
    quiet = Enqueuer(settings)
    quiet.start()
    time.sleep(1.0)
    quiet.stop.set()
    quiet.join()
    held = timed_writes(store)
    busy = Enqueuer(settings)
    busy.start()
    calls: list[float] = []
    deleted = 0
    pruning_began = time.perf_counter()
    policy = RetentionPolicy()
    while True:
        t = time.perf_counter()
        result = store.job_prune_expired(policy, limit=batch)
        calls.append(time.perf_counter() - t)
        deleted += result.total
        if not result.full:
            break
        time.sleep(pause_after(calls[-1]))  # as a worker and `offload prune` do
    busy.stop.set()
    busy.join()
    store.close()
    assert deleted == jobs, (deleted, jobs)
    pruning_s = time.perf_counter() - pruning_began
    return {
        "store": backend,
        "jobs": jobs,
        "batch": batch,
        "bytes_per_job_written": round(written / jobs),
        "bytes_per_job_compacted": round(compacted / jobs),
        "fill_seconds": round(filled_s, 1),
        "batches": len(calls),
        "batch_ms_p50": ms(calls, 0.5),
        "batch_ms_max": ms(calls, 1),
        "lock_held_ms_p50": ms(held, 0.5) if held else None,
        "lock_held_ms_max": ms(held, 1) if held else None,
        "jobs_pruned_per_s": round(deleted / pruning_s) if pruning_s else None,
        "enqueue_ms_p99_quiet": ms(quiet.times, 0.99),
        "enqueue_ms_p99_pruning": ms(busy.times, 0.99),
        "enqueue_ms_max_pruning": ms(busy.times, 1),
    }


def report(row: dict[str, Any]) -> None:
    per_job = row["bytes_per_job_written"]
    print(f"== {row['store']}: {row['jobs']} finished jobs, pruned in batches of {row['batch']}")
    print(f"  bytes per finished job     {per_job} as written, "
          f"{row['bytes_per_job_compacted']} compacted (VACUUM)")  # fmt: skip
    for per_day in (10_000, 100_000, 1_000_000):
        month = per_day * 30 * per_job / 1e9
        print(f"  {per_day:>9,} jobs a day      {month:8.2f} GB after 30 days without pruning")
    print(
        f"  one batch                  p50 {row['batch_ms_p50']} ms, max {row['batch_ms_max']}"
        f" ms ({row['batches']} batches, {row['jobs_pruned_per_s']} jobs/s with the pauses)"
    )
    if row["lock_held_ms_p50"] is not None:
        print(f"  write lock held per batch  p50 {row['lock_held_ms_p50']} ms, "
              f"max {row['lock_held_ms_max']} ms")  # fmt: skip
    print(f"  a concurrent enqueue       p99 {row['enqueue_ms_p99_quiet']} ms alone, "
          f"p99 {row['enqueue_ms_p99_pruning']} ms / max {row['enqueue_ms_max_pruning']} ms "
          "while pruning")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--quick", action="store_true", help="2,000 jobs (smoke test)")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=Settings().prune_batch)
    parser.add_argument("--postgres-url", help="use this server instead of a throwaway one")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    jobs = 2_000 if args.quick else args.jobs
    rows = []
    for backend in args.stores.split(","):
        urls = sqlite_urls() if backend == "sqlite" else postgres_urls(args.postgres_url)
        with urls as fresh:
            row = measure(backend, fresh(), jobs, args.batch)
        report(row)
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine_cpus": os.cpu_count(), "rows": rows}))
    command = "python -m bench.prune " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"\nreproduce: .venv/bin/{command.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
