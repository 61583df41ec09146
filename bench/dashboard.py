"""What the dashboard's pages cost over a big store: 1,000,000 jobs by default.

    .venv/bin/python -m bench.dashboard                          # SQLite and PostgreSQL
    .venv/bin/python -m bench.dashboard --stores sqlite --jobs 100000

The store is filled as ``bench.metrics`` fills it (8 queues; 90 % succeeded, 5 % failed,
...), then each page is requested through the web application (routing, the store, the
templates; no network), ``--requests`` times: the newest page of the jobs list, a page
half a million jobs deep (keyset paging: as fast as the first), the failed jobs (first
page and deep), one queue, one job, the processes and the overview (counts by queue and
state, jobs finished per minute). The overview page keeps what it read for a few seconds,
so its figure is mostly that of a kept reading; "overview, store read" is what reading
afresh costs (what the page pays every few seconds). Prints the median and worst time of
each.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
import warnings

from bench.metrics import Fill, add_processes, add_store_options, chosen_stores, with_filled_app
from offload import Offload
from offload.types import JobFilter, JobState


def _paths(app: Offload, jobs: int) -> dict[str, str]:
    store = app.store
    (newest,) = store.job_list(JobFilter(limit=1))
    middle = store.job_list(JobFilter(limit=1, before_id=_id(jobs // 2)))[0].id
    deep_failed = store.job_list(JobFilter(state=JobState.FAILED, limit=1, before_id=middle))
    return {
        "jobs, newest page": "/jobs",
        f"jobs, page {jobs // 2:,} deep": f"/jobs?before={middle}",
        "failed, newest page": "/jobs?state=failed",
        "failed, deep page": f"/jobs?state=failed&before={deep_failed[0].id}",
        "one queue, newest page": "/jobs?queue=q3",
        "one queue, deep page": f"/jobs?queue=q3&before={middle}",
        "one job": f"/jobs/{newest.id}",
        "processes": "/processes",
        "overview": "/",
    }


def _id(i: int) -> str:
    """The id bench.metrics gives job number ``i``."""
    return f"{i // 1000:08x}-0000-7000-8000-{i:012x}"


def measure(app: Offload, jobs: int, requests: int, fill: Fill) -> dict[str, list[float]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test client's own deprecation notice
        from starlette.testclient import TestClient

    from offload.web import create_app

    app.migrate()
    fill(app, jobs, app.store.now())
    add_processes(app)
    client = TestClient(create_app(app, metrics=False), base_url="http://localhost")
    out: dict[str, list[float]] = {}
    for name, path in _paths(app, jobs).items():
        response = client.get(path)  # warm: connections open, pages cached
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            client.get(path)
            times.append(time.perf_counter() - started)
        out[name] = times
    from offload.web.dashboard.overview import MINUTES

    times = []
    for _ in range(requests):
        started = time.perf_counter()
        app.store.job_counts()
        app.store.job_finished_by_minute(MINUTES)
        times.append(time.perf_counter() - started)
    out["overview, store read"] = times
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=10)
    add_store_options(parser)
    args = parser.parse_args(argv)
    if args.jobs < 1000 or args.requests < 1:
        parser.error("--jobs must be at least 1000 and --requests positive")
    print(f"{'store':<10} {'page':<28} {'median ms':>10} {'max ms':>10}")
    for name in chosen_stores(parser, args.stores):
        results = with_filled_app(
            name, args.postgres_url, lambda app, fill: measure(app, args.jobs, args.requests, fill)
        )
        for page, times in results.items():
            median, worst = 1000 * statistics.median(times), 1000 * max(times)
            print(f"{name:<10} {page:<28} {median:>10.1f} {worst:>10.1f}")
    given = sys.argv[1:] if argv is None else argv
    print("reproduce: " + shlex.join([".venv/bin/python", "-m", "bench.dashboard", *given]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
