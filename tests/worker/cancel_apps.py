"""Tasks for ``tests/worker/test_cancel.py``: two wait until someone asks to cancel them,
then, instead of raising ``Cancel``, raise an ordinary error or hang until killed; one
reports progress and fails. They write ledger rows like the tasks of ``apps.py``."""

from __future__ import annotations

import signal
import time

from offload import JobContext, Offload
from tests.worker.apps import ledger

app = Offload()


def _wait_for_cancel(ctx: JobContext) -> None:
    ledger("start")
    while not ctx.cancel_requested:
        time.sleep(0.02)
    ledger("cancel_seen")


@app.task(context=True, retries=2, backoff=0.0)
def raise_after_cancel(ctx: JobContext) -> None:
    """Raise an ordinary error once asked to cancel (a retry would run it again at once)."""
    _wait_for_cancel(ctx)
    raise ValueError("cleanup failed")


@app.task(context=True, retries=2, backoff=0.0)
def hang_after_cancel(ctx: JobContext) -> None:
    """Block once asked to cancel, until the test kills the process."""
    _wait_for_cancel(ctx)
    while True:
        signal.pause()


@app.task(context=True, retries=2, backoff=3600.0)
def progress_then_fail(ctx: JobContext) -> None:
    """Report 40 % and a message, then fail (its retry waits an hour)."""
    ctx.progress(4, total=10, message="page 4")
    ledger("start")
    raise RuntimeError("failed at 40 %")


@app.task(context=True, retries=2, backoff=0.0)
def ignore_cancel(ctx: JobContext) -> None:
    """Never look at the cancel flag: only the worker can stop it."""
    ledger("start")
    while True:
        time.sleep(0.05)


@app.task(context=True, retries=2, backoff=0.0)
def ignore_cancel_and_sigterm(ctx: JobContext) -> None:
    """As ``ignore_cancel``, and shrug off SIGTERM too: only SIGKILL stops it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ledger("start")
    while True:
        time.sleep(0.05)
