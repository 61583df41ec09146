"""A concurrency limit holds under kills: jobs limited to two at once on the key "api",
claimed by two workers of three children each, while children and a whole worker are
SIGKILLed. Two oracles: the store (a monitor counts running jobs of the key every few
milliseconds) and the jobs themselves (each counts the live processes running a limited
job, see ``apps.limited``); plain jobs beside them all run too."""

from __future__ import annotations

import random
import threading
import time

from offload.testing import wait_for
from tests.faults.harness import FaultHarness, figure, kill


def test_a_limited_key_never_exceeds_its_limit_under_kills(faults: FaultHarness) -> None:
    h = faults
    slots = h.tmp / "slots"
    slots.mkdir()
    limited = h.task("limited").enqueue_many([("limit", i, 40, str(slots)) for i in range(120)])
    plain = h.task("work").enqueue_many([("plain", i, 20) for i in range(120)])
    ids = [j.id for j in limited + plain]
    running_peak = 0
    samples = 0
    stop = threading.Event()

    def monitor() -> None:
        nonlocal running_peak, samples
        while not stop.is_set():
            (n,), *_ = h.sql(
                "SELECT count(*) FROM {jobs} WHERE state = 'running' AND limit_key = 'api'"
            )
            running_peak = max(running_peak, int(n))
            samples += 1
            time.sleep(0.005)

    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    workers = [h.start("--concurrency", "3") for _ in range(2)]
    killed_children = 0
    try:
        wait_for(lambda: h.ledger_count("done") >= 20, timeout=30, what="jobs running")
        for _ in range(4):  # children killed mid-job
            pids = [p for w in workers for p in h.children(w)]
            if pids:
                kill(random.choice(pids))
                killed_children += 1
            time.sleep(0.3)
        kill(workers[0].pid)  # a whole worker: its children go with it; leases expire
        for pid in h.children(workers[0]):
            kill(pid)
        workers.append(h.start("--concurrency", "3"))
        wait_for(lambda: h.done_count(ids) == len(ids), timeout=120, what="every job done")
    finally:
        stop.set()
        watcher.join(5)
    over = h.rows("over")
    print(
        figure(
            "limit-under-kills", h.backend, jobs=len(ids), limit=2, peak=running_peak,
            samples=samples, killed_children=killed_children, over=len(over),
        )
    )  # fmt: skip
    assert samples > 50
    assert running_peak <= 2, f"{running_peak} limited jobs running at once in the store"
    assert not over, f"a limited job saw more than two run at once: {over[:5]}"
    assert running_peak == 2  # the limit was used, not just respected
    verdict = h.verify(ids, may_repeat=ids)
    verdict.assert_clean()
