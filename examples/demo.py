"""offload demo: a bulk import of 20,000 records plus a few mails, on embedded SQLite.

    python examples/demo.py

It enqueues the jobs, starts a worker pool (``offload worker``) in the background, shows
a progress bar until every job has finished, prints the process table and throughput,
then stops the worker gracefully (SIGTERM).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

RECORDS = 20_000
CHUNK = 100
ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="offload-demo-"))
    url = f"sqlite:///{workdir / 'offload.db'}"
    env = {**os.environ, "OFFLOAD_URL": url, "DEMO_IMPORT_DB": str(workdir / "imported.db")}
    env["OFFLOAD_HEARTBEAT"] = "1"  # the process table below is fresh within a second
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    from examples.demo_app import app, import_chunk, send_mail

    console.print(f"[bold]offload demo[/] store: {url}")
    started = time.monotonic()
    chunks = import_chunk.enqueue_many([(first, CHUNK) for first in range(0, RECORDS, CHUNK)])
    mails = [send_mail.enqueue(f"user{i}@example.com", "Your import is running") for i in range(5)]
    jobs = [*chunks, *mails]
    console.print(
        f"enqueued {len(chunks)} import jobs ({RECORDS} records) and {len(mails)} mails "
        f"in {(time.monotonic() - started) * 1000:.0f} ms"
    )

    worker = subprocess.Popen(
        [sys.executable, "-m", "offload", "worker", "--app", "examples.demo_app:app",
         "--concurrency", "2", "--queues", "imports,mail",
         "--log-file", str(workdir / "worker.log")],
        env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        elapsed = _watch(console, app, len(jobs))
        _wait_for_table(app, len(jobs))
        console.print()
        subprocess.run([sys.executable, "-m", "offload", "ps"], env=env, cwd=ROOT, check=False)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)

    counts = app.store.job_counts()
    done = sum(n for (_, state), n in counts.items() if state == "succeeded")
    failed = sum(n for (_, state), n in counts.items() if state in ("failed", "quarantined"))
    console.print(
        f"[bold green]{done} jobs succeeded[/], {failed} failed, in {elapsed:.2f} s: "
        f"{done / elapsed:,.0f} jobs/s, {RECORDS / elapsed:,.0f} records/s"
    )
    console.print(f"first mail: {mails[0].refresh().result()}")
    console.print(f"worker log: {workdir / 'worker.log'}")
    return 0 if done == len(jobs) and failed == 0 else 1


def _wait_for_table(app: object, total: int) -> None:
    """Let the workers' next heartbeat publish their final counts (at most a few seconds)."""
    from offload import Offload

    assert isinstance(app, Offload)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = app.store.process_list(gone_after=10)
        if sum(p.served for p in rows if p.kind == "child") >= total:
            return
        time.sleep(0.1)


def _watch(console: Console, app: object, total: int) -> float:
    from offload import Offload

    assert isinstance(app, Offload)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    first_start: float | None = None
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("processing", total=total)
        while True:
            counts = app.store.job_counts()
            finished = sum(
                n for (_, s), n in counts.items()
                if s in ("succeeded", "failed", "cancelled", "quarantined")
            )  # fmt: skip
            running = sum(n for (_, s), n in counts.items() if s == "running")
            if first_start is None and (finished or running):
                first_start = time.monotonic()
            progress.update(bar, completed=finished)
            if finished >= total:
                break
            time.sleep(0.1)
    return time.monotonic() - (first_start or time.monotonic())


if __name__ == "__main__":
    sys.exit(main())
