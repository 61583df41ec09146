"""An app with the tasks of a group and its callback, for the groups pages
(``offload web|worker --app tests.web.groups_app:app``, queue ``web_groups``).
``hold`` waits for a file, so a test decides when its group can complete."""

from __future__ import annotations

import os
import time

from offload import Offload

app = Offload()

#: The queue every task of this app runs on.
QUEUE = "web_groups"


@app.task(name="web.groups.square", queue=QUEUE, retries=0)
def square(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * x


@app.task(name="web.groups.hold", queue=QUEUE, retries=0)
def hold(gate: str) -> str:
    """Wait (at most two minutes) for the file ``gate`` to exist."""
    deadline = time.monotonic() + 120
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate} never appeared")
        time.sleep(0.05)
    return "released"


@app.task(name="web.groups.report", queue=QUEUE)
def report(group_id: str, succeeded: int, failed: int) -> str:
    """A group's callback."""
    return f"{group_id}: {succeeded} succeeded, {failed} failed"
