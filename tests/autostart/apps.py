"""The app the autostart tests enqueue to and the drains they start import. It reads
``OFFLOAD_URL``, ``OFFLOAD_AUTOSTART`` and the other settings when built, so each process
is configured by its environment. Tasks write a ledger row (job id, attempt, pid, phase)
into the SQLite file named by ``OFFLOAD_TEST_LEDGER``: the oracle for which process ran a
job.

Run as a script, it is an enqueuing "web process": ``python -m tests.autostart.apps N GATE``
waits for the file GATE, then enqueues N jobs of ``record``, one at a time, as fast as it
can, and prints their ids.
"""

from __future__ import annotations

import os
import sys
import time

from offload import Offload
from tests.fixtures.ledger import ledger

app = Offload()


@app.task(name="record")
def record(tag: str = "") -> str:
    """Succeed at once."""
    ledger("done")
    return tag


@app.task(name="gated")
def gated(gate: str) -> str:
    """Run until the file ``gate`` exists."""
    ledger("start")
    while not os.path.exists(gate):
        time.sleep(0.02)
    ledger("done")
    return "opened"


@app.task(name="mail", queue="mail")
def mail(tag: str = "") -> str:
    """Succeed at once, on the ``mail`` queue."""
    ledger("done")
    return tag


def main(argv: list[str]) -> None:
    count, gate = int(argv[0]), argv[1]
    while not os.path.exists(gate):
        time.sleep(0.005)
    for n in range(count):
        print(record.enqueue(f"{os.getpid()}-{n}").id, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
