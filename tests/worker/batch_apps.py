"""Tasks for the batching tests: a no-op (so recent jobs are far under a millisecond and a
worker hands out batches) and a long job held open by a file. One queue only: batches
form only while every queue a worker serves is fast."""

from __future__ import annotations

import os
import time

from offload import Offload

app = Offload()


@app.task(retries=0)
def noop(i: int = 0) -> int:
    return i


@app.task(retries=0)
def gated(gate: str) -> str:
    """Run until the file ``gate`` exists; ``gate + '.started'`` says it began."""
    with open(gate + ".started", "a") as marker:
        marker.write(f"{os.getpid()}\n")
    while not os.path.exists(gate):
        time.sleep(0.01)
    return "opened"
