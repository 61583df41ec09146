"""offload benchmarks: enqueue, processing, I/O-bound throughput, start latency, RSS, and the
store's own limits, on SQLite and PostgreSQL, measured in one run on this machine.

    .venv/bin/python -m bench.run                     # full run, both stores
    .venv/bin/python -m bench.run --quick             # tiny sizes (what the test suite runs)
    .venv/bin/python -m bench.run --stores sqlite --only processing

Prints a table and writes JSON (default bench/results/latest.json). Every processing figure
is verified by counting completed jobs in the store, and measured from the first claim to
the last completion on the store's clock.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Sizes:
    enqueue_single: int = 5_000
    enqueue_bulk: int = 100_000
    processing: int = 20_000
    io_jobs: int = 2_000
    latency_jobs: int = 500
    rss_jobs: int = 100_000
    raw_rows: int = 100_000
    raw_commits: int = 2_000

    @classmethod
    def quick(cls) -> Sizes:
        return cls(200, 2_000, 500, 64, 20, 1_000, 5_000, 100)


@dataclass
class Result:
    store: str
    name: str
    value: float
    unit: str
    detail: dict[str, Any] = field(default_factory=dict)


# -- stores ---------------------------------------------------------------------------------
@contextlib.contextmanager
def sqlite_urls() -> Iterator[Callable[[], str]]:
    with tempfile.TemporaryDirectory(prefix="offload-bench-") as tmp:
        counter = iter(range(1_000_000))
        yield lambda: f"sqlite:///{tmp}/bench-{next(counter)}.db"


@contextlib.contextmanager
def postgres_urls(url: str | None) -> Iterator[Callable[[], str]]:
    """Fresh databases on the server at ``url``, or on a throwaway server started here."""
    import psycopg

    with contextlib.ExitStack() as stack:
        if url is None:
            import shutil

            from tests.fixtures.postgres import PostgresServer, find_bin_dir

            bin_dir = find_bin_dir()
            if bin_dir is None:
                raise SystemExit("PostgreSQL binaries not found: run scripts/ensure-postgres")
            root = Path(tempfile.mkdtemp(prefix="offload-bench-pg-"))
            stack.callback(shutil.rmtree, root, ignore_errors=True)
            server = PostgresServer(bin_dir, root)
            server.init()
            server.start()
            stack.callback(server.stop, "immediate")
            url = server.url("postgres")
        counter = iter(range(1_000_000))
        base, _, _ = url.rpartition("/")

        def fresh() -> str:
            name = f"offload_bench_{os.getpid()}_{next(counter)}"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name}")
                conn.execute(f"CREATE DATABASE {name}")
            return f"{base}/{name}"

        yield fresh


# -- measurements -----------------------------------------------------------------------------
def fresh_app(url: str) -> Any:
    os.environ["OFFLOAD_URL"] = url
    import importlib

    import bench.tasks

    importlib.reload(bench.tasks)  # rebinds bench.tasks.app to this URL
    bench.tasks.app.migrate()
    return bench.tasks


def bench_enqueue_single(store: str, url: str, n: int) -> Result:
    tasks = fresh_app(url)
    tasks.noop.enqueue(-1)  # connect and migrate outside the timing
    started = time.perf_counter()
    for i in range(n):
        tasks.noop.enqueue(i)
    elapsed = time.perf_counter() - started
    return Result(store, "enqueue, one per call", n / elapsed, "jobs/s", {"jobs": n})


def bench_enqueue_bulk(store: str, url: str, n: int) -> Result:
    tasks = fresh_app(url)
    tasks.noop.enqueue(-1)
    batch = 10_000
    started = time.perf_counter()
    for first in range(0, n, batch):
        tasks.noop.enqueue_many([(i,) for i in range(first, min(n, first + batch))])
    elapsed = time.perf_counter() - started
    return Result(store, "enqueue_many (10k per call)", n / elapsed, "jobs/s", {"jobs": n})


@contextlib.contextmanager
def worker(url: str, concurrency: int, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "OFFLOAD_URL": url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "offload", "worker", "--app", "bench.tasks:app",
         "--concurrency", str(concurrency), "--queues", "bench", *extra],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_done(tasks: Any, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        counts = tasks.app.store.job_counts()
        finished = sum(v for (_, s), v in counts.items() if s in ("succeeded", "failed"))
        if finished >= n:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {finished} of {n} jobs finished within {timeout} s")
        time.sleep(0.05)


def span(tasks: Any, n: int) -> tuple[float, int]:
    """Seconds from the first claim to the last completion, and succeeded jobs counted."""
    from offload.store.base import JobFilter, JobState

    records = tasks.app.store.job_list(JobFilter(state=JobState.SUCCEEDED, limit=n + 10))
    starts = [r.started_at for r in records if r.started_at]
    ends = [r.finished_at for r in records if r.finished_at]
    return max(ends) - min(starts), len(records)


def bench_processing(store: str, url: str, n: int, concurrency: int, task: str = "noop") -> Result:
    tasks = fresh_app(url)
    getattr(tasks, task).enqueue_many([(i,) for i in range(n)])
    with worker(url, concurrency):
        wait_done(tasks, n, timeout=max(120.0, n / 50))
    elapsed, done = span(tasks, n)
    if done != n:
        raise RuntimeError(f"{store}: {done} of {n} jobs succeeded")
    label = "no-op jobs" if task == "noop" else "10 ms sleep jobs"
    return Result(
        store, f"process {label}, concurrency {concurrency}", done / elapsed, "jobs/s",
        {"jobs": n, "verified_succeeded": done, "seconds": round(elapsed, 3)},
    )  # fmt: skip


def bench_latency(store: str, url: str, n: int) -> Result:
    tasks = fresh_app(url)
    tasks.noop.enqueue(-1)
    with worker(url, 2):
        wait_done(tasks, 1, timeout=60)  # the worker is up and idle
        jobs = []
        for i in range(n):
            jobs.append(tasks.noop.enqueue(i))
            time.sleep(0.02)
        wait_done(tasks, n + 1, timeout=60)
    lat = sorted(
        (r.started_at - r.created_at) * 1000
        for r in (tasks.app.store.job_get(j.id) for j in jobs)
        if r is not None and r.started_at is not None
    )
    return Result(
        store, "enqueue-to-start latency, idle worker (p50)", _pct(lat, 50), "ms",
        {"p50_ms": _pct(lat, 50), "p95_ms": _pct(lat, 95), "p99_ms": _pct(lat, 99), "jobs": n},
    )  # fmt: skip


def bench_rss(store: str, url: str, n: int) -> Result:
    tasks = fresh_app(url)
    tasks.noop.enqueue_many([(i,) for i in range(1000)])
    with worker(url, 2) as proc:
        wait_done(tasks, 1000, timeout=120)
        sup = psutil.Process(proc.pid)
        start_rss = sup.memory_info().rss
        start_children = [c.memory_info().rss for c in sup.children()]
        for first in range(0, n, 10_000):
            tasks.noop.enqueue_many([(i,) for i in range(first, min(n, first + 10_000))])
        wait_done(tasks, n + 1000, timeout=max(300.0, n / 50))
        end_rss = sup.memory_info().rss
        end_children = [c.memory_info().rss for c in sup.children()]
    growth = (end_rss - start_rss) / 1e6
    return Result(
        store, f"supervisor RSS growth over {n:,} jobs", growth, "MB",
        {"supervisor_start_mb": start_rss / 1e6, "supervisor_end_mb": end_rss / 1e6,
         "children_start_mb": [r / 1e6 for r in start_children],
         "children_end_mb": [r / 1e6 for r in end_children]},
    )  # fmt: skip


def bench_sqlite_raw(rows: int, commits: int) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(f"{tmp}/raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, task TEXT, args TEXT, at REAL)")
        data = [(f"{i:036d}", "bench.tasks.noop", f"[{i}]", time.time()) for i in range(rows)]
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", data)
        conn.execute("COMMIT")
        batched = rows / (time.perf_counter() - started)
        started = time.perf_counter()
        for i in range(commits):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?, 'x', '[]', 0)", (f"c{i}",))
            conn.execute("COMMIT")
        single = commits / (time.perf_counter() - started)
        conn.close()
    return [
        Result("sqlite", "raw: batched insert, one transaction", batched, "rows/s"),
        Result("sqlite", "raw: one-row commits (WAL, NORMAL)", single, "commits/s"),
    ]


def bench_postgres_raw(url: str, commits: int) -> list[Result]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS raw_t (id text PRIMARY KEY, v text)")
        started = time.perf_counter()
        for i in range(commits):
            conn.execute("INSERT INTO raw_t VALUES (%s, 'x')", (f"c{i}",))
        single = commits / (time.perf_counter() - started)
    return [Result("postgres", "raw: one-row commits (durable)", single, "commits/s")]


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


# -- driver -------------------------------------------------------------------------------------
def run_store(store: str, fresh: Callable[[], str], sizes: Sizes, only: set[str]) -> list[Result]:
    out: list[Result] = []

    def want(name: str) -> bool:
        return not only or name in only

    if want("raw"):
        if store == "sqlite":
            out += bench_sqlite_raw(sizes.raw_rows, sizes.raw_commits)
        else:
            out += bench_postgres_raw(fresh(), sizes.raw_commits)
    if want("enqueue"):
        out.append(bench_enqueue_single(store, fresh(), sizes.enqueue_single))
        out.append(bench_enqueue_bulk(store, fresh(), sizes.enqueue_bulk))
    if want("processing"):
        for concurrency in (1, 2, 4):
            out.append(bench_processing(store, fresh(), sizes.processing, concurrency))
    if want("io"):
        for concurrency in (8, 32):
            out.append(bench_processing(store, fresh(), sizes.io_jobs, concurrency, "sleep10"))
    if want("latency"):
        out.append(bench_latency(store, fresh(), sizes.latency_jobs))
    if want("rss"):
        out.append(bench_rss(store, fresh(), sizes.rss_jobs))
    for r in out:
        print(f"  {r.store:9} {r.name:55} {_fmt(r.value):>12} {r.unit}", flush=True)
    return out


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def print_table(results: list[Result]) -> None:
    print()
    print(f"{'store':9} {'measurement':55} {'value':>12} unit")
    print("-" * 90)
    for r in results:
        print(f"{r.store:9} {r.name:55} {_fmt(r.value):>12} {r.unit}")
        extra = {k: v for k, v in r.detail.items() if k.endswith("_ms")}
        if extra:
            print(" " * 10 + "  ".join(f"{k}={v:.2f}" for k, v in extra.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--only", default="", help="raw,enqueue,processing,io,latency,rss")
    parser.add_argument("--postgres-url", help="use this server instead of a throwaway one")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    only = {s for s in args.only.split(",") if s}
    results: list[Result] = []
    for store in args.stores.split(","):
        print(f"== {store}", flush=True)
        urls = sqlite_urls() if store == "sqlite" else postgres_urls(args.postgres_url)
        with urls as fresh:
            results += run_store(store, fresh, sizes, only)
    print_table(results)
    command = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {
        "command": command.strip(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "sqlite": sqlite3.sqlite_version},
        "results": [asdict(r) for r in results],
    }  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {args.json}\nreproduce: .venv/bin/{command.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
