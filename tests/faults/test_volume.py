"""Volume: a large bulk enqueue drained by one worker on two cores, with nothing lost,
nothing run twice, and a supervisor whose memory stays flat."""

from __future__ import annotations

import time

import psutil
import pytest

from offload.testing import wait_for
from tests.faults.harness import FaultHarness, figure

#: Both stores drain 100,000 jobs; on two cores that takes about 10 s on SQLite and 25 s
#: on PostgreSQL (sub-millisecond jobs go to the children in small batches).
COUNTS = {"sqlite": 100_000, "postgres": 100_000}
CHUNK = 10_000
RSS_SLACK = 20 * 1024 * 1024


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bulk_enqueued_jobs_drain_without_loss_and_flat_supervisor_memory(
    faults: FaultHarness,
) -> None:
    h = faults
    total = COUNTS[h.backend]
    work = h.task("work")
    ids: list[str] = []
    for first in range(0, total, CHUNK):
        jobs = work.enqueue_many([("volume", i, 0) for i in range(first, first + CHUNK)])
        ids.extend(j.id for j in jobs)
    assert len(ids) == total

    start = time.monotonic()
    worker = h.start("--concurrency", "2")
    supervisor = psutil.Process(worker.pid)
    samples: list[tuple[int, int]] = []  # (jobs done, supervisor RSS)

    def drained() -> bool:
        done = h.ledger_count()
        samples.append((done, supervisor.memory_info().rss))
        return done >= total

    wait_for(drained, timeout=280, interval=0.5, what=f"{total} jobs run")
    wait_for(lambda: h.done_count() == total, timeout=30, what="every outcome recorded")
    took = time.monotonic() - start
    assert worker.popen.poll() is None

    # Flat: after warm-up (the first 5 % of jobs), RSS never rises 20 MB above where it was.
    warm = [rss for done, rss in samples if done >= total // 20]
    assert warm, "no RSS sample after warm-up"
    growth = max(warm) - warm[0]
    assert growth <= RSS_SLACK, f"supervisor RSS grew {growth / 2**20:.1f} MB"
    verdict = h.verify(ids)
    print(
        figure(
            "bulk-drain", h.backend, jobs=total, lost=len(verdict.lost),
            duplicates=len(verdict.duplicates), jobs_per_s=total / took,
            rss_growth_mb=growth / 2**20,
        )
    )  # fmt: skip
    verdict.assert_clean()
    assert not verdict.duplicates
