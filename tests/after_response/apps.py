"""The offload app the after-response tests serve, and the view logic every web stack
shares. Tasks write ledger rows (job id, attempt, pid, phase) into the SQLite file named by
``OFFLOAD_TEST_LEDGER``: the oracle for where a job ran and how often.

``app`` reads ``OFFLOAD_URL`` and the other ``OFFLOAD_*`` settings when built, so a server
process is configured by its environment.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from offload import Offload
from offload.after_response import NotStoredJob, in_request
from tests.fixtures.ledger import ledger

app = Offload()


@app.task(name="record")
def record(tag: str = "") -> str:
    """Succeed at once."""
    ledger("done")
    return tag


@app.task(name="pause")
def pause(seconds: float) -> float:
    """Sleep, like a task waiting on a slow API."""
    ledger("start")
    time.sleep(seconds)
    ledger("done")
    return seconds


@app.task(name="gated")
def gated(gate: str) -> str:
    """Run until the file ``gate`` exists (the test releases it)."""
    ledger("start")
    while not os.path.exists(gate):
        time.sleep(0.02)
    ledger("done")
    return "opened"


def add_jobs(task: str, args: str = "[]", count: int = 1) -> dict[str, Any]:
    """What every ``/after`` view does: ``count`` after-response jobs of ``task``."""
    handles = [app.get_task(task).after_response(*json.loads(args)) for _ in range(count)]
    return _described(handles)


async def aadd_jobs(task: str, args: str = "[]", count: int = 1) -> dict[str, Any]:
    """The same from an async view, with ``aafter_response``."""
    chosen = app.get_task(task)
    handles = [await chosen.aafter_response(*json.loads(args)) for _ in range(count)]
    return _described(handles)


def _described(handles: list[Any]) -> dict[str, Any]:
    return {
        "ids": [job.id for job in handles],
        "stored": [not isinstance(job, NotStoredJob) for job in handles],
        "in_request": in_request(),
        "pid": os.getpid(),
    }
