"""Tasks for the web tests. ``app`` reads ``OFFLOAD_URL`` and ``OFFLOAD_SECRET`` when
built; the web server (``offload web --app tests.web.apps:app``), the workers and the
test process all import it."""

from __future__ import annotations

import os
import time

from offload import Cancel, JobContext, Offload

app = Offload()

#: Steps of ``stepped``: the test releases each one with a gate file.
STEPS = 4


def _gate(path: str) -> None:
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} never opened")
        time.sleep(0.01)


@app.task(name="web.stepped", context=True, queue="steps", retries=0)
def stepped(ctx: JobContext, gate_dir: str, private_note: str) -> str:
    """Reports step n of STEPS, then waits for ``<gate_dir>/step-n``."""
    ctx.message("started")
    for step in range(1, STEPS + 1):
        ctx.progress(step, total=STEPS, message=f"step {step}")
        _gate(os.path.join(gate_dir, f"step-{step}"))
    ctx.save("report", "report.csv", public=True)
    ctx.save("internal", private_note)
    return f"result with {private_note}"


@app.task(name="web.fails", context=True, queue="metrics", retries=0)
def fails(ctx: JobContext, private_note: str) -> None:
    ctx.message("about to fail")
    raise ValueError(f"failure detail {private_note}")


@app.task(name="web.shared", context=True, queue="metrics", public_result=True, retries=0)
def shared(ctx: JobContext, n: int) -> dict[str, int]:
    ctx.save("count", n, public=True)
    ctx.save("hidden", "kept inside")
    return {"n": n}


@app.task(name="web.private", queue="metrics", retries=0)
def private(n: int) -> dict[str, int]:
    return {"n": n}


@app.task(name="web.later", queue="late")
def later() -> None:
    """Never run by the tests: jobs of it wait, scheduled or overdue."""


def _gate_or_cancel(ctx: JobContext, path: str) -> None:
    deadline = time.monotonic() + 90
    while not os.path.exists(path):
        if ctx.cancel_requested:
            raise Cancel("stopped from the dashboard")
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} never opened")
        time.sleep(0.02)


@app.task(name="web.flaky", context=True, queue="browser", retries=0)
def flaky(ctx: JobContext, gate_dir: str) -> str:
    """Steps through STEPS gates (``<gate_dir>/a<attempt>-step-<n>``), stopping when
    cancelled; the first attempt then fails."""
    ctx.message(f"attempt {ctx.attempt} started")
    for step in range(1, STEPS + 1):
        ctx.progress(step, total=STEPS, message=f"step {step}")
        _gate_or_cancel(ctx, os.path.join(gate_dir, f"a{ctx.attempt}-step-{step}"))
    if ctx.attempt == 1:
        raise RuntimeError("the first attempt fails on purpose")
    return "second attempt done"
