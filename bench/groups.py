"""What a group costs: N jobs as members of one group against the same N plain jobs,
enqueue and processing measured side by side on SQLite.

    .venv/bin/python -m bench.groups                  # 100,000 jobs, two rounds
    .venv/bin/python -m bench.groups --jobs 2000 --rounds 1

Each run uses a fresh store, enqueues in batches of 10,000 (``enqueue_many`` against
``group.add_many`` then ``seal``), starts ``offload worker --concurrency 2`` and stops
the clock when every job is done (for the group: when it is complete and its callback
has run). Rounds alternate plain and group runs; the ratio of the medians is printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 10_000


def run_once(url: str, jobs: int, grouped: bool) -> tuple[float, float, float]:
    """Seconds to enqueue, seconds from the start of the enqueue until all is done, and
    the CPU seconds spent on it (this process's enqueue, the worker and its children),
    which the machine's other load moves less than the wall clock."""
    os.environ["OFFLOAD_URL"] = url
    import importlib

    import bench.tasks

    tasks = importlib.reload(bench.tasks)
    tasks.app.migrate()
    cpu = time.process_time()
    children = _children_cpu()
    started = time.perf_counter()
    if grouped:
        group = tasks.app.group(name="bench", then=tasks.group_done)
        for first in range(0, jobs, BATCH):
            group.add_many(tasks.noop, [(i,) for i in range(first, min(jobs, first + BATCH))])
        group.seal()
    else:
        for first in range(0, jobs, BATCH):
            tasks.noop.enqueue_many([(i,) for i in range(first, min(jobs, first + BATCH))])
    enqueued = time.perf_counter() - started
    cpu = time.process_time() - cpu
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "offload", "worker", "--app", "bench.tasks:app",
         "--concurrency", "2", "--queues", "bench"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        want = jobs + 1 if grouped else jobs
        deadline = time.monotonic() + max(120.0, jobs / 50)
        while _succeeded(tasks) < want:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{_succeeded(tasks)} of {want} jobs done, worker {proc.poll()}")
            time.sleep(0.25)
        total = time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    cpu += _children_cpu() - children  # the worker, and the children it reaped
    if grouped:
        row = group.refresh()
        assert (row.total, row.succeeded, row.failed) == (jobs, jobs, 0), row
    tasks.app.close()
    return enqueued, total, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _succeeded(tasks: object) -> int:
    counts = tasks.app.store.job_counts()  # type: ignore[attr-defined]
    return sum(n for (_, state), n in counts.items() if state == "succeeded")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    figures: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="offload-bench-groups-") as tmp:
        for n in range(args.rounds):
            for grouped in (False, True):
                url = f"sqlite:///{tmp}/bench-{n}-{int(grouped)}.db"
                enq, total, cpu = run_once(url, args.jobs, grouped)
                figures[grouped].append((enq, total, cpu))
                label = "group" if grouped else "plain"
                print(f"  round {n + 1} {label:5} enqueue {enq:7.2f} s  all done {total:7.2f} s"
                      f"  cpu {cpu:7.2f} s", flush=True)  # fmt: skip
    for i, what in enumerate(("enqueue", "enqueue + processing", "cpu")):
        plain = statistics.median(f[i] for f in figures[False])
        group = statistics.median(f[i] for f in figures[True])
        print(f"{args.jobs:,} jobs, {what}: plain {plain:.2f} s, group {group:.2f} s, "
              f"group/plain {group / plain:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
