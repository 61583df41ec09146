"""Per-key concurrency limits: at most ``limit_max`` jobs with one ``limit_key`` run at
once, whichever worker claims them; the jobs over the limit stay queued (no worker holds
them), and jobs without a limit behind them are still claimed."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from typing import Any

from offload.store import Store, open_store
from offload.types import ClaimRequest, Outcome
from tests.fixtures.postgres import store_settings
from tests.store.contract.helpers import Q, add, claim, job, state


def running_with(store: Store, key: str) -> int:
    from offload.types import JobFilter

    rows = store.job_list(JobFilter(state=Q.RUNNING, limit=10_000))
    return sum(1 for r in rows if r.limit_key == key)


def test_a_claim_takes_no_more_than_the_limit(store: Store) -> None:
    add(store, 5, limit_key="api", limit_max=2)
    assert len(claim(store, 10)) == 2
    assert claim(store, 10) == []
    assert running_with(store, "api") == 2


def test_a_finished_job_frees_its_place(store: Store) -> None:
    add(store, 4, limit_key="api", limit_max=2)
    first, second = claim(store, 10)
    assert store.job_write(outcomes=[Outcome(first.id, first.attempt, Q.SUCCEEDED, "1")])
    (third,) = claim(store, 10)
    assert third.id not in (first.id, second.id)
    assert running_with(store, "api") == 2


def test_the_limit_reads_back_on_the_job(store: Store) -> None:
    (job_id,) = add(store, limit_key="api:stripe", limit_max=3)
    row = store.job_get(job_id)
    assert row is not None and (row.limit_key, row.limit_max) == ("api:stripe", 3)
    (plain,) = add(store)
    row = store.job_get(plain)
    assert row is not None and (row.limit_key, row.limit_max) == (None, 0)


def test_jobs_behind_a_full_key_are_still_claimed(store: Store) -> None:
    limited = add(store, 3, limit_key="api", limit_max=1, priority=9)
    plain = add(store, 2, priority=0)
    got = claim(store, 10)
    assert [c.id for c in got] == [limited[0], *plain]  # claim order kept
    assert claim(store, 10) == []
    assert state(store, limited[1]) is Q.QUEUED


def test_keys_are_independent(store: Store) -> None:
    add(store, 3, limit_key="a", limit_max=1)
    add(store, 3, limit_key="b", limit_max=2)
    got = claim(store, 10)
    assert len(got) == 3
    assert running_with(store, "a") == 1 and running_with(store, "b") == 2


def test_a_claim_of_given_ids_keeps_the_limit(store: Store) -> None:
    ids = add(store, 3, limit_key="api", limit_max=1)
    assert len(claim(store, 10, job_ids=ids)) == 1
    assert claim(store, 10, job_ids=ids) == []


def test_write_and_claim_frees_a_place_and_fills_it_in_one_turn(store: Store) -> None:
    add(store, 3, limit_key="api", limit_max=1)
    (first,) = claim(store, 10)
    request = ClaimRequest(worker_id="w1", queues=("default",), tasks=("t",), limit=5, lease=30.0)
    accepted, claimed = store.job_write_and_claim(
        claim=request, outcomes=[Outcome(first.id, first.attempt, Q.SUCCEEDED, "1")]
    )
    assert accepted == [True] and len(claimed) == 1
    assert running_with(store, "api") == 1


def test_a_rescued_lease_frees_its_place(store: Store) -> None:
    add(store, 2, limit_key="api", limit_max=1)
    (first,) = claim(store, 10, lease=0.2)
    import time

    time.sleep(0.5)
    rescued = store.lease_rescue_expired(crash_limit=5)
    assert [r.job_id for r in rescued] == [first.id]
    assert len(claim(store, 10)) == 1
    assert running_with(store, "api") == 1


def test_each_job_is_judged_by_its_own_limit(store: Store) -> None:
    add(store, 2, limit_key="api", limit_max=1, priority=5)
    add(store, 2, limit_key="api", limit_max=3)
    got = claim(store, 10)
    # The first takes the only place a limit of 1 allows; those allowing 3 run beside it.
    assert len(got) == 3


def test_threads_claiming_at_once_never_exceed_the_limit(store_url: str, store: Store) -> None:
    add(store, 40, limit_key="api", limit_max=3)
    stores = [open_store(store_settings(store_url)) for _ in range(6)]
    try:
        barrier = threading.Barrier(len(stores))
        got: list[str] = []
        lock = threading.Lock()

        def take(s: Store, worker: str) -> None:
            barrier.wait()
            for _ in range(5):
                claimed = claim(s, 4, worker=worker)
                with lock:
                    got.extend(c.id for c in claimed)

        threads = [threading.Thread(target=take, args=(s, f"w{i}")) for i, s in enumerate(stores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(got) == 3 and running_with(store, "api") == 3
    finally:
        for s in stores:
            s.close()


def _process_cycle(url: str, worker: str, start: Any) -> list[tuple[str, int]]:
    """Claim and finish limited jobs until none is left; what ran at once, as seen by
    this process right after each claim."""
    start.wait()
    s = open_store(store_settings(url))
    seen = []
    try:
        idle = 0
        while idle < 50:
            claimed = claim(s, 2, worker=worker)
            if not claimed:
                idle += 1
                import time

                time.sleep(0.01)
                continue
            idle = 0
            seen.append((worker, running_with(s, "api")))
            s.job_write(outcomes=[Outcome(c.id, c.attempt, Q.SUCCEEDED, "1") for c in claimed])
        return seen
    finally:
        s.close()


def test_processes_claiming_and_finishing_never_exceed_the_limit(store: Store) -> None:
    add(store, 60, limit_key="api", limit_max=2)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(4) as pool:
            pending = [
                pool.apply_async(_process_cycle, (store.url, f"p{i}", start)) for i in range(4)
            ]
            start.set()
            results = [p.get(timeout=120) for p in pending]
    peaks = [n for got in results for _, n in got]
    assert peaks and max(peaks) <= 2
    assert store.job_counts() == {("default", "succeeded"): 60}
    assert Counter(w for got in results for w, _ in got)  # every claim was seen


def test_members_of_a_group_keep_their_limit(store: Store) -> None:
    from offload.ids import uuid7
    from offload.types import NewGroup

    group = store.group_create(NewGroup(id=uuid7()))
    ids = store.group_add(group.id, [job(limit_key="api", limit_max=1) for _ in range(3)])
    row = store.job_get(ids[0])
    assert row is not None and (row.limit_key, row.limit_max) == ("api", 1)
    assert len(claim(store, 10)) == 1
