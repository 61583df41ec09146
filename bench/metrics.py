"""What one ``/metrics`` scrape costs over a big store: 1,000,000 jobs by default.

    .venv/bin/python -m bench.metrics                          # SQLite and PostgreSQL
    .venv/bin/python -m bench.metrics --stores sqlite --jobs 100000
    .venv/bin/python -m bench.metrics --postgres-url postgresql://user@host/db

The jobs are inserted in bulk with direct SQL (8 queues; 90 % succeeded, 5 % failed, 3 %
waiting, half of those scheduled, 1 % running, 1 % cancelled), 24 process rows through
the store, then the collector of ``/metrics`` is run and its exposition text built, as
the endpoint does, ``--scrapes`` times. Prints the median and worst scrape (target:
under 200 ms) and the command that reproduced it.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from offload import Offload
from offload.ids import uuid7
from offload.types import ProcessInfo

TARGET_MS = 200.0
QUEUES = 8

#: The stored state of job number ``i`` (of every 100: 90 succeeded, 5 failed, ...).
_STATE_SQL = (
    "CASE WHEN {m} < 90 THEN 'succeeded' WHEN {m} < 95 THEN 'failed'"
    " WHEN {m} < 98 THEN 'queued' WHEN {m} < 99 THEN 'running' ELSE 'cancelled' END"
)


def fill_sqlite(app: Offload, jobs: int, now: float) -> None:
    import sqlite3

    path = app.settings.url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last)"
            " INSERT INTO offload_jobs (id, task, queue, state, args, kwargs, attempt,"
            " created_at, run_at, started_at, finished_at)"
            " SELECT printf('%08x-0000-7000-8000-%012x', i / 1000, i), 'bench.task',"
            f" 'q' || (i % {QUEUES}), {_STATE_SQL.format(m='i % 100')}, '[]', '{{}}', 1,"
            " :now - 86400 + i * 0.01, :now - 86400 + i * 0.01 + (i % 2) * 172800,"
            " :now - 86400 + i * 0.01, :now - 86400 + i * 0.01 + 0.05 FROM n",
            {"now": now, "last": jobs - 1},
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()
    # Jobs written with SQL of one's own: the counts the store keeps are rebuilt from them.
    from offload.store.sqlite import SQLiteStore

    assert isinstance(app.store, SQLiteStore)
    app.store.job_recount()


def fill_postgres(app: Offload, jobs: int, now: float) -> None:
    import psycopg

    schema = app.settings.schema
    with psycopg.connect(app.settings.url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {schema}.jobs (id, task, queue, state, args, kwargs, attempt,"
            " created_at, run_at, started_at, finished_at)"
            " SELECT lpad(to_hex(i / 1000), 8, '0') || '-0000-7000-8000-'"
            " || lpad(to_hex(i), 12, '0'), 'bench.task',"
            f" 'q' || mod(i, {QUEUES}), {_STATE_SQL.format(m='mod(i, 100)')}, '[]', '{{}}', 1,"
            " %(now)s - 86400 + i * 0.01, %(now)s - 86400 + i * 0.01 + mod(i, 2) * 172800,"
            " %(now)s - 86400 + i * 0.01, %(now)s - 86400 + i * 0.01 + 0.05"
            " FROM generate_series(0, %(last)s) AS i",
            {"now": now, "last": jobs - 1},
        )
        conn.execute(f"VACUUM ANALYZE {schema}.jobs")


def add_processes(app: Offload) -> None:
    """Three workers of seven children each, and three drains."""
    rows = []
    for w in range(3):
        parent = uuid7()
        rows.append(ProcessInfo(id=parent, kind="supervisor", host="bench", pid=1000 + w,
                                served=1000 * w, failed=w, rss=80 << 20))  # fmt: skip
        rows += [
            ProcessInfo(
                id=uuid7(),
                kind="child",
                host="bench",
                pid=2000 + 10 * w + c,
                parent_id=parent,
                rss=60 << 20,
            )
            for c in range(7)
        ]
    rows += [ProcessInfo(id=uuid7(), kind="drain", host="bench", pid=3000 + d) for d in range(3)]
    app.store.process_heartbeat(rows)


#: Fills a store with jobs: fill(app, jobs, now).
Fill = Callable[[Offload, int, float], None]
T = TypeVar("T")


def measure(app: Offload, jobs: int, scrapes: int, fill: Fill) -> dict[str, float]:
    from prometheus_client import generate_latest

    from offload.web.metrics import registry_for

    app.migrate()
    started = time.perf_counter()
    fill(app, jobs, app.store.now())
    filled = time.perf_counter() - started
    add_processes(app)
    counted = sum(app.store.job_counts().values())
    if counted != jobs:
        raise SystemExit(f"expected {jobs} jobs in the store, counted {counted}")
    registry = registry_for(app)
    generate_latest(registry)  # warm: connections open, pages cached, as in service
    times = []
    for _ in range(scrapes):
        t = time.perf_counter()
        text = generate_latest(registry)
        times.append(time.perf_counter() - t)
    if b"offload_store_up 1.0" not in text:
        raise SystemExit("the store did not answer the scrape")
    return {"fill_s": filled, "median_ms": 1000 * statistics.median(times),
            "max_ms": 1000 * max(times), "bytes": float(len(text))}  # fmt: skip


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--stores`` and ``--postgres-url``, as the big-store benchmarks take them."""
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--postgres-url", help="a server to make databases on (default: "
                        "a throwaway one started here)")  # fmt: skip


def chosen_stores(parser: argparse.ArgumentParser, text: str) -> list[str]:
    stores = [s.strip() for s in text.split(",") if s.strip()]
    if not stores or set(stores) - {"sqlite", "postgres"}:
        parser.error("--stores: a comma-separated list of sqlite, postgres")
    return stores


def with_filled_app(name: str, postgres_url: str | None, run: Callable[[Offload, Fill], T]) -> T:
    """``run`` on an app over a fresh store of backend ``name``, with its fill function."""
    from bench.run import postgres_urls, sqlite_urls

    urls = sqlite_urls() if name == "sqlite" else postgres_urls(postgres_url)
    fill = fill_sqlite if name == "sqlite" else fill_postgres
    with urls as fresh:
        app = Offload(fresh())
        try:
            return run(app, fill)
        finally:
            app.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=10)
    add_store_options(parser)
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.scrapes < 1:
        parser.error("--jobs and --scrapes must be positive")
    results = []
    for name in chosen_stores(parser, args.stores):
        result = with_filled_app(
            name, args.postgres_url, lambda app, fill: measure(app, args.jobs, args.scrapes, fill)
        )
        results.append((name, result))
        met = "met" if result["median_ms"] < TARGET_MS else "MISSED"
        print(
            f"{name:9} {args.jobs:>9,} jobs: scrape median {result['median_ms']:7.1f} ms, "
            f"worst {result['max_ms']:7.1f} ms ({args.scrapes} scrapes, "
            f"{result['bytes'] / 1024:.1f} KiB; target < {TARGET_MS:.0f} ms: {met}); "
            f"filled in {result['fill_s']:.1f} s",
            flush=True,
        )
    print("reproduce: " + shlex.join([".venv/bin/python", "-m", "bench.metrics", *sys.argv[1:]]))
    return 0 if all(r["median_ms"] < TARGET_MS for _, r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
