"""Batches, hand-backs and recycling at once: tiny jobs go to the children in batches, a
slower job now and then makes the rest of its batch wait past ``batch_wait`` (handed back,
then returned by the child), and every few jobs a child is recycled. Before the fixes a
child's late "returned" could recycle it a second time (the pool wedged on a descriptor
registered twice, logging worker.error forever) or hand back jobs of the next batch,
which its child then ran as well (duplicates)."""

from __future__ import annotations

import time

import pytest

from offload.testing import wait_for
from tests.faults.harness import FaultHarness, figure

TOTAL = 3000


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_batches_handed_back_while_children_recycle_lose_and_repeat_nothing(
    faults: FaultHarness,
) -> None:
    h = faults
    work = h.task("work")
    # Mostly tiny jobs (batched), one in 25 takes 15 ms: the jobs batched behind it wait
    # past batch_wait and are handed back while it runs.
    args = [("churn", i, 15 if i % 25 == 0 else 0) for i in range(TOTAL)]
    ids = [j.id for j in work.enqueue_many(args)]
    start = time.monotonic()
    worker = h.start(
        "--concurrency", "2", recycle_min=5, recycle_max=15, batch_max=8, batch_wait=0.004,
    )  # fmt: skip

    wait_for(lambda: h.done_count(ids) == TOTAL, timeout=90, interval=0.5, what="all done")
    took = time.monotonic() - start
    assert worker.popen.poll() is None
    log = worker.log()
    verdict = h.verify(ids)
    print(
        figure(
            "batch-churn", h.backend, jobs=TOTAL, lost=len(verdict.lost),
            duplicates=len(verdict.duplicates), handed_back=log.count("event=job.handed_back"),
            recycled=log.count("event=child.recycle"), seconds=took,
        )
    )  # fmt: skip
    verdict.assert_clean()
    assert not verdict.duplicates
    assert "event=worker.error" not in log
    assert "event=child.spawn_refused" not in log
