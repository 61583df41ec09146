"""Bulk enqueues killed part way, and bad input of every kind."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import pytest

from offload.errors import PayloadTooLarge, SerializationError
from offload.testing import wait_for
from offload.types import JobFilter, JobState
from tests.faults.harness import FaultHarness, figure
from tests.fixtures.processes import ROOT, worker_env

BATCH = 2000
KILLS = 50
AT_ONCE = 5


def _batch_counts(h: FaultHarness) -> dict[str, int]:
    marker = "json_extract(args, '$[0]')" if h.backend == "sqlite" else "(args::jsonb)->>0"
    rows = h.sql(f"SELECT {marker}, count(*) FROM {{jobs}} GROUP BY 1")
    return {str(m): int(n) for m, n in rows}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_bulk_enqueue_killed_at_random_points_is_all_or_nothing(faults: FaultHarness) -> None:
    h = faults
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    env = worker_env(h.url, h.ledger)
    kills = 0
    committed: set[str] = set()
    start = time.monotonic()
    while kills < KILLS:
        runs = [f"r{kills + n}" for n in range(AT_ONCE)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.faults.bulk_enqueue", run, str(BATCH)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for run in runs
        ]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        # Even-numbered processes are killed a random delay after they are ready (often
        # inside their first batch); odd-numbered ones a random delay after their first
        # batch is stored (inside a later one), so the test never depends on how fast
        # the machine commits.
        deadlines = sorted((rng.uniform(0, 0.3), i) for i in range(0, len(procs), 2))
        began = time.monotonic()
        for delay, i in deadlines:
            remaining = began + delay - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)  # a random kill point, not a wait for a condition
            procs[i].kill()
        for i in range(1, len(procs), 2):
            stdout = procs[i].stdout
            assert stdout is not None and stdout.readline() == "committed\n"
            committed.add(runs[i])
            time.sleep(rng.uniform(0, 0.3))  # a random kill point after a stored batch
            procs[i].kill()
        for proc in procs:
            proc.wait(timeout=10)
            assert proc.stdout is not None
            proc.stdout.close()
        kills += len(procs)
    took = time.monotonic() - start

    counts = _batch_counts(h)
    partial = {batch: n for batch, n in counts.items() if n != BATCH}
    assert not partial, f"batches stored in part (seed {seed}): {partial}"
    runs_with_rows = {batch.split(":")[0] for batch in counts}
    assert committed <= runs_with_rows, f"stored batches missing (seed {seed})"
    assert not h.integrity()
    print(
        figure(
            "bulk-enqueue-killed",
            h.backend,
            kills=kills,
            batches=len(counts),
            jobs=sum(counts.values()),
            partial=len(partial),
            lost=0,
            duplicates=0,
            s_per_kill=took / kills,
        )
    )


def test_bad_input_is_refused_or_ends_visible(faults: FaultHarness) -> None:
    h = faults
    work = h.task("work")
    # Arguments that are not strict JSON are refused, naming the path of the bad value.
    with pytest.raises(SerializationError) as bad:
        work.enqueue("bad-json", {"ok": 1, "when": {1, 2}})  # type: ignore[arg-type]
    assert "args[1]" in str(bad.value) and "when" in str(bad.value), str(bad.value)
    # A 10 MB argument is refused with its size and the limit.
    with pytest.raises(PayloadTooLarge) as big:
        work.enqueue("x" * (10 * 1024 * 1024), 0)
    limit = h.app.settings.max_payload_bytes
    assert str(limit) in str(big.value) and "10485" in str(big.value), str(big.value)
    assert h.sql("SELECT count(*) FROM {jobs}")[0][0] == 0

    # A job of a task only a newer worker knows, and a row whose payload was corrupted
    # in the table, among 1,000 good jobs.
    later = h.task("later").enqueue(7)
    good = work.enqueue_many([("good", i, 0) for i in range(1000)])
    corrupt = work.enqueue("corrupt", -1)
    h.sql("UPDATE {jobs} SET args = %s WHERE id = %s", ("not json{", corrupt.id))

    old = h.start("--concurrency", "2", app="tests.faults.apps:small_app")
    good_ids = [j.id for j in good]
    wait_for(lambda: h.done_count(good_ids) == 1000, timeout=60, what="the good jobs done")
    record = corrupt.wait(timeout=10).record
    assert record.state is JobState.FAILED
    error = json.loads(record.error or "{}")
    assert error["type"] == "PayloadError"
    assert "stored arguments cannot be decoded" in error["message"], error["message"]
    # The unknown task waits, visible, untouched by a worker that lacks it...
    record = later.refresh().record
    assert (record.state, record.attempt) == (JobState.QUEUED, 0)
    waiting = h.app.store.job_list(JobFilter(state=JobState.QUEUED, limit=10))
    assert [r.id for r in waiting] == [later.id]
    assert old.popen.poll() is None

    # ...until a worker that has it starts.
    started = time.monotonic()
    h.start("--concurrency", "1")
    assert later.wait(timeout=20).state is JobState.SUCCEEDED
    took = time.monotonic() - started
    verdict = h.verify([*good_ids, later.id], ending={corrupt.id: "failed"})
    print(
        figure(
            "bad-input",
            h.backend,
            jobs=1002,
            lost=len(verdict.lost),
            duplicates=len(verdict.duplicates),
            recovery_s=took,
        )
    )
    verdict.assert_clean()
    assert not verdict.duplicates
