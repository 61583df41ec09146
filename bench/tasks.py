"""Tasks the benchmarks run. The app reads OFFLOAD_URL, set by bench/run.py."""

from __future__ import annotations

import time

from offload import Offload

app = Offload()


@app.task(queue="bench", retries=0)
def noop(i: int) -> None:
    """The cheapest possible job: measures the queue, not the work."""


@app.task(queue="bench", retries=0)
def sleep10(i: int) -> None:
    """An I/O-bound job: 10 ms of waiting."""
    time.sleep(0.01)


@app.task(queue="bench", retries=0)
def group_done(group_id: str, succeeded: int, failed: int) -> None:
    """The callback of the group benchmark (bench/groups.py)."""
