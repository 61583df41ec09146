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
        return cls(200, 2_000, 300, 48, 20, 600, 5_000, 100)


@dataclass
class Result:
    store: str
    #: Stable identifier of the measurement (what tests and scripts look up).
    key: str
    name: str
    value: float
    unit: str
    detail: dict[str, Any] = field(default_factory=dict)
    #: ``value`` as a fraction of what the storage (or the work itself) allows, and what
    #: that limit is; filled in by :func:`add_fractions`.
    fraction: float | None = None
    limit: str = ""
    target: str = ""
    met: bool | None = None


#: Goals on the reference machine (2 cores): (store, key) -> (">=" or "<", value).
TARGETS: dict[tuple[str, str], tuple[str, float]] = {
    ("sqlite", "processing_c2"): (">=", 9_000),
    ("sqlite", "enqueue_single"): (">=", 8_000),
    ("sqlite", "enqueue_bulk"): (">=", 100_000),
    ("sqlite", "latency_p50"): ("<", 1.3),
    ("sqlite", "latency_p99"): ("<", 10.0),
    ("sqlite", "rss_supervisor_growth"): ("<", 20.0),
    ("postgres", "processing_c2"): (">=", 6_000),
    ("postgres", "latency_p50"): ("<", 3.0),
    ("postgres", "latency_p99"): ("<", 10.0),
    ("postgres", "rss_supervisor_growth"): ("<", 20.0),
}

#: Which raw storage figure bounds which measurement: a job needs at least its claim and
#: its outcome written, an enqueue one commit (or one batched insert for enqueue_many).
LIMITS: dict[str, str] = {
    "enqueue_single": "raw_commit",
    "enqueue_bulk": "raw_batched_insert",
    "processing_c1": "raw_commit",
    "processing_c2": "raw_commit",
    "processing_c4": "raw_commit",
}


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
    return Result(
        store, "enqueue_single", "enqueue, one job per call", n / elapsed, "jobs/s", {"jobs": n}
    )


def bench_enqueue_bulk(store: str, url: str, n: int) -> Result:
    tasks = fresh_app(url)
    tasks.noop.enqueue(-1)
    batch = 10_000
    started = time.perf_counter()
    for first in range(0, n, batch):
        tasks.noop.enqueue_many([(i,) for i in range(first, min(n, first + batch))])
    elapsed = time.perf_counter() - started
    return Result(
        store, "enqueue_bulk", "enqueue_many, 10,000 jobs per call", n / elapsed, "jobs/s",
        {"jobs": n},
    )  # fmt: skip


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


def wait_done(tasks: Any, n: int, timeout: float, proc: subprocess.Popen[bytes] | None) -> None:
    """Wait until ``n`` jobs finished. Polls slowly: the figures come from the store's
    timestamps, and a tight count loop would steal CPU from the worker being measured."""
    deadline = time.monotonic() + timeout
    while True:
        counts = tasks.app.store.job_counts()
        finished = sum(v for (_, s), v in counts.items() if s in ("succeeded", "failed"))
        if finished >= n:
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the worker exited ({proc.returncode}) after {finished} of {n}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {finished} of {n} jobs finished within {timeout} s")
        time.sleep(0.02 if n < 10 else 0.25)


def span(tasks: Any, n: int) -> tuple[float, int]:
    """Seconds from the first claim to the last completion, and succeeded jobs counted."""
    from offload.types import JobFilter, JobState

    records = tasks.app.store.job_list(JobFilter(state=JobState.SUCCEEDED, limit=n + 10))
    starts = [r.started_at for r in records if r.started_at]
    ends = [r.finished_at for r in records if r.finished_at]
    return max(ends) - min(starts), len(records)


def bench_processing(store: str, url: str, n: int, concurrency: int, task: str = "noop") -> Result:
    tasks = fresh_app(url)
    for first in range(0, n, 10_000):
        getattr(tasks, task).enqueue_many([(i,) for i in range(first, min(n, first + 10_000))])
    with worker(url, concurrency) as proc:
        wait_done(tasks, n, timeout=max(120.0, n / 50), proc=proc)
    elapsed, done = span(tasks, n)
    if done != n:
        raise RuntimeError(f"{store}: {done} of {n} jobs succeeded")
    if task == "noop":
        key = f"processing_c{concurrency}"
        name = f"process {n:,} no-op jobs, concurrency {concurrency}"
    else:
        key = f"io_c{concurrency}"
        name = f"process {n:,} 10 ms-sleep jobs, concurrency {concurrency}"
    return Result(
        store, key, name, done / elapsed, "jobs/s",
        {"jobs": n, "concurrency": concurrency, "verified_succeeded": done,
         "seconds": round(elapsed, 3)},
    )  # fmt: skip


def bench_latency(store: str, url: str, n: int) -> list[Result]:
    tasks = fresh_app(url)
    tasks.noop.enqueue(-1)
    with worker(url, 2) as proc:
        wait_done(tasks, 1, timeout=60, proc=proc)  # the worker is up
        time.sleep(0.2)  # and idle
        jobs = []
        for i in range(n):
            jobs.append(tasks.noop.enqueue(i))
            time.sleep(0.02)
        wait_done(tasks, n + 1, timeout=60, proc=proc)
    lat = sorted(
        (r.started_at - r.created_at) * 1000
        for r in (tasks.app.store.job_get(j.id) for j in jobs)
        if r is not None and r.started_at is not None
    )
    detail = {"jobs": n, "measured": len(lat), "max_ms": lat[-1] if lat else None}
    name = "enqueue-to-start latency, idle worker, p{}"
    return [
        Result(store, f"latency_p{p}", name.format(p), _pct(lat, p), "ms", detail)
        for p in (50, 95, 99)
    ]


def bench_rss(store: str, url: str, n: int) -> list[Result]:
    tasks = fresh_app(url)
    tasks.noop.enqueue_many([(i,) for i in range(1000)])
    with worker(url, 2) as proc:
        wait_done(tasks, 1000, timeout=120, proc=proc)
        sup = psutil.Process(proc.pid)
        start_rss = sup.memory_info().rss
        start_children = [c.memory_info().rss for c in sup.children()]
        for first in range(0, n, 10_000):
            tasks.noop.enqueue_many([(i,) for i in range(first, min(n, first + 10_000))])
        wait_done(tasks, n + 1000, timeout=max(300.0, n / 50), proc=proc)
        end_rss = sup.memory_info().rss
        end_children = [c.memory_info().rss for c in sup.children()]
    mb = 1e6
    detail = {
        "jobs": n,
        "supervisor_start_mb": round(start_rss / mb, 1),
        "supervisor_end_mb": round(end_rss / mb, 1),
        "children_start_mb": [round(r / mb, 1) for r in start_children],
        "children_end_mb": [round(r / mb, 1) for r in end_children],
        "note": "children are recycled after 1000-2000 jobs, so the end figures are of "
        "the children alive at the end",
    }
    return [
        Result(store, "rss_supervisor_start", "supervisor RSS at start", start_rss / mb,
               "MB", detail),
        Result(store, "rss_supervisor_end", f"supervisor RSS after {n:,} jobs", end_rss / mb,
               "MB", detail),
        Result(store, "rss_supervisor_growth", f"supervisor RSS growth over {n:,} jobs",
               (end_rss - start_rss) / mb, "MB", detail),
        Result(store, "rss_child_start", "child RSS at start (largest)",
               max(start_children, default=0) / mb, "MB", detail),
        Result(store, "rss_child_end", f"child RSS after {n:,} jobs (largest)",
               max(end_children, default=0) / mb, "MB", detail),
    ]  # fmt: skip


def bench_sqlite_raw(rows: int, commits: int) -> list[Result]:
    """What SQLite itself allows here, with offload's settings (WAL, synchronous=NORMAL)."""
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
        Result("sqlite", "raw_batched_insert", "raw: batched insert, one transaction",
               batched, "rows/s", {"rows": rows}),
        Result("sqlite", "raw_commit", "raw: one-row commits (WAL, synchronous=NORMAL)",
               single, "commits/s", {"commits": commits}),
    ]  # fmt: skip


def bench_postgres_raw(url: str, rows: int, commits: int) -> list[Result]:
    """What the server allows here: durable one-row commits, and one batched insert."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE raw_t (id text PRIMARY KEY, v text)")
        started = time.perf_counter()
        for i in range(commits):
            conn.execute("INSERT INTO raw_t VALUES (%s, 'x')", (f"c{i}",))
        single = commits / (time.perf_counter() - started)
        conn.execute("CREATE TABLE raw_b (id text PRIMARY KEY, task text, args text, at float8)")
        ids = [f"{i:036d}" for i in range(rows)]
        args = [f"[{i}]" for i in range(rows)]
        started = time.perf_counter()
        conn.execute(
            "INSERT INTO raw_b SELECT id, 'bench.tasks.noop', a, 0"
            " FROM unnest(%s::text[], %s::text[]) AS t(id, a)",
            (ids, args),
        )
        batched = rows / (time.perf_counter() - started)
        sync = conn.execute("SHOW synchronous_commit").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
    settings = {"fsync": fsync[0] if fsync else "?", "synchronous_commit": sync[0] if sync else "?"}
    return [
        Result("postgres", "raw_batched_insert", "raw: batched insert, one statement",
               batched, "rows/s", {"rows": rows}),
        Result("postgres", "raw_commit", "raw: one-row commits (durable)", single,
               "commits/s", {"commits": commits, **settings}),
    ]  # fmt: skip


def add_fractions(results: list[Result]) -> None:
    """Fill in each figure's fraction of its limit, and whether its target is met."""
    raw = {(r.store, r.key): r.value for r in results if r.key.startswith("raw_")}
    for r in results:
        ref = LIMITS.get(r.key)
        if ref is not None and (r.store, ref) in raw:
            r.fraction = r.value / raw[(r.store, ref)]
            r.limit = ref
        elif r.key.startswith("io_c"):
            # The work itself bounds these: concurrency x 100 jobs/s of 10 ms each.
            ideal = r.detail["concurrency"] / 0.010
            r.fraction = r.value / ideal
            r.limit = f"ideal {ideal:,.0f} jobs/s"
        target = TARGETS.get((r.store, r.key))
        if target is not None:
            op, goal = target
            r.target = f"{op} {_fmt(goal)}"
            r.met = r.value >= goal if op == ">=" else r.value < goal


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


# -- driver -------------------------------------------------------------------------------------
SECTIONS = ("raw", "enqueue", "processing", "io", "latency", "rss")


def run_store(store: str, fresh: Callable[[], str], sizes: Sizes, only: set[str]) -> list[Result]:
    out: list[Result] = []

    def want(name: str) -> bool:
        return not only or name in only

    def show(new: list[Result]) -> None:
        for r in new:
            print(f"  {r.store:9} {r.name:58} {_fmt(r.value):>12} {r.unit}", flush=True)
        out.extend(new)

    if want("raw"):
        if store == "sqlite":
            show(bench_sqlite_raw(sizes.raw_rows, sizes.raw_commits))
        else:
            show(bench_postgres_raw(fresh(), sizes.raw_rows, sizes.raw_commits))
    if want("enqueue"):
        show([bench_enqueue_single(store, fresh(), sizes.enqueue_single)])
        show([bench_enqueue_bulk(store, fresh(), sizes.enqueue_bulk)])
    if want("processing"):
        for concurrency in (1, 2, 4):
            show([bench_processing(store, fresh(), sizes.processing, concurrency)])
    if want("io"):
        for concurrency in (8, 32):
            show([bench_processing(store, fresh(), sizes.io_jobs, concurrency, "sleep10")])
    if want("latency"):
        show(bench_latency(store, fresh(), sizes.latency_jobs))
    if want("rss"):
        show(bench_rss(store, fresh(), sizes.rss_jobs))
    return out


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def print_table(results: list[Result]) -> None:
    print()
    head = f"{'store':9} {'measurement':58} {'value':>12} {'unit':10} {'of limit':>8}  target"
    print(head)
    print("-" * (len(head) + 12))
    for r in results:
        fraction = f"{r.fraction:.0%}" if r.fraction is not None else ""
        verdict = "" if r.met is None else ("met" if r.met else "NOT MET")
        target = f"{r.target} {verdict}".strip()
        print(f"{r.store:9} {r.name:58} {_fmt(r.value):>12} {r.unit:10} {fraction:>8}  {target}")
    print("\nof limit: processing and enqueue against one-row commits/s, enqueue_many against")
    print("the batched insert rate (raw_* rows, same run); 10 ms jobs against concurrency x 100/s.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--only", default="", help=",".join(SECTIONS))
    parser.add_argument("--postgres-url", help="use this server instead of a throwaway one")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    only = {s for s in args.only.split(",") if s}
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown --only section(s): {', '.join(sorted(unknown))}")
    results: list[Result] = []
    versions: dict[str, str] = {"sqlite": sqlite3.sqlite_version}
    begun = time.perf_counter()
    for store in args.stores.split(","):
        print(f"== {store}", flush=True)
        urls = sqlite_urls() if store == "sqlite" else postgres_urls(args.postgres_url)
        with urls as fresh:
            if store == "postgres":
                versions["postgres"] = _postgres_version(fresh)
            results += run_store(store, fresh, sizes, only)
    add_fractions(results)
    print_table(results)
    command = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {
        "command": command.strip(),
        "seconds": round(time.perf_counter() - begun, 1),
        "sizes": asdict(sizes),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), **versions},
        "results": [asdict(r) for r in results],
    }  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {args.json} in {report['seconds']} s")
    print(f"reproduce: .venv/bin/{command.strip()}")
    return 0


def _postgres_version(fresh: Callable[[], str]) -> str:
    import psycopg

    with psycopg.connect(fresh(), autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


if __name__ == "__main__":
    sys.exit(main())
