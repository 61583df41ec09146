"""Fire records of periodic schedules: each ``(schedule, fire_at)`` becomes one job, across
every process and machine that fires it, in the transaction that records it."""

from __future__ import annotations

import threading
import time

import pytest

from offload.errors import StoreError
from offload.store import Store, open_store
from offload.types import FireRecord, JobState, ScheduleFire
from tests.fixtures.postgres import store_settings
from tests.store.contract.helpers import add, claim, job

T0 = 1_800_000_000  # a whole second: fire times are ints


def fire(schedule: str = "nightly", at: int = T0, **fields: object) -> ScheduleFire:
    return ScheduleFire(schedule, at, job(**fields))


def test_a_fire_is_recorded_with_its_job(store: Store) -> None:
    f = fire(args="[1]")
    assert store.schedule_fire([f]) == [f.job.id]

    row = store.job_get(f.job.id)
    assert row is not None and row.state is JobState.QUEUED and row.args == "[1]"
    last = store.schedule_last_fires()
    assert list(last) == ["nightly"]
    record = last["nightly"]
    assert (record.schedule, record.fire_at, record.job_id) == ("nightly", T0, f.job.id)
    assert abs(record.recorded_at - store.now()) < 60
    assert [c.id for c in claim(store)] == [f.job.id]  # an ordinary job


def test_a_fire_already_recorded_inserts_no_job(store: Store) -> None:
    first, again = fire(), fire()
    store.schedule_fire([first])

    assert store.schedule_fire([again]) == [None]
    assert store.job_get(again.job.id) is None
    assert store.schedule_last_fires()["nightly"].job_id == first.job.id


def test_the_same_fire_twice_in_one_batch_is_recorded_once(store: Store) -> None:
    a, b, other = fire(), fire(), fire(at=T0 + 60)

    assert store.schedule_fire([a, b, other]) == [a.job.id, None, other.job.id]
    assert store.job_get(b.job.id) is None


def test_fires_are_told_apart_by_schedule_and_time(store: Store) -> None:
    fires = [fire("a", T0), fire("a", T0 + 1), fire("b", T0)]

    assert store.schedule_fire(fires) == [f.job.id for f in fires]
    assert store.schedule_fire([fire("b", T0 + 1)]) != [None]


def test_a_batch_is_all_or_nothing(store: Store) -> None:
    (taken,) = add(store)
    ok = fire("a", T0)
    clash = ScheduleFire("b", T0, job(id=taken))  # a job id already in the store

    with pytest.raises(StoreError):
        store.schedule_fire([ok, clash])

    assert store.schedule_last_fires() == {}
    assert store.job_get(ok.job.id) is None
    assert store.schedule_fire([ok]) == [ok.job.id]  # not recorded by the failed batch


def test_a_unique_key_held_by_a_waiting_job_records_that_job(store: Store) -> None:
    (held,) = add(store, unique_key="report")
    f = fire(unique_key="report")

    assert store.schedule_fire([f]) == [held]
    assert store.schedule_last_fires()["nightly"].job_id == held


def test_last_fires_are_the_latest_of_each_schedule(store: Store) -> None:
    store.schedule_fire([fire("a", T0 + 120), fire("b", T0)])
    store.schedule_fire([fire("a", T0 + 60)])  # a late catch-up fire, older than the latest

    last = store.schedule_last_fires()
    assert {name: r.fire_at for name, r in last.items()} == {"a": T0 + 120, "b": T0}
    assert all(isinstance(r, FireRecord) and type(r.fire_at) is int for r in last.values())


def test_bad_fires_are_refused_naming_the_schedule(store: Store) -> None:
    with pytest.raises(ValueError, match=r"fires\[0\] of schedule 'a'.*whole epoch seconds"):
        store.schedule_fire([ScheduleFire("a", T0 + 0.5, job())])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fires\[1\]: expected schedule"):
        store.schedule_fire([fire(), ScheduleFire("", T0, job())])
    with pytest.raises(ValueError, match="fire_at"):
        store.schedule_fire([ScheduleFire("a", -1, job())])
    assert store.schedule_last_fires() == {}
    assert store.schedule_fire([]) == []


def test_prune_keeps_the_latest_fire_of_each_schedule(store: Store) -> None:
    now = int(store.now())
    store.schedule_fire([fire("a", now - 7200), fire("a", now - 3600), fire("b", now - 7200)])
    store.schedule_fire([fire("a", now - 10)])
    # Fires recorded just now are kept, however old their fire time (a catch-up).
    assert store.schedule_prune(older_than=1800) == 0
    time.sleep(0.2)

    assert store.schedule_prune(older_than=0.1) == 2  # a's two old ones; b's only one stays

    last = store.schedule_last_fires()
    assert {name: r.fire_at for name, r in last.items()} == {"a": now - 10, "b": now - 7200}
    # A pruned fire is forgotten; the kept ones still refuse a second job.
    assert store.schedule_fire([fire("a", now - 10), fire("b", now - 7200)]) == [None, None]
    assert store.schedule_prune(older_than=0.1) == 0


def test_racing_schedulers_make_one_job_per_fire(store_url: str) -> None:
    # Given four processes' worth of stores firing the same 40 fires at the same moment.
    stores = [open_store(store_settings(store_url)) for _ in range(4)]
    results: list[list[str | None]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def race(s: Store) -> None:
        try:
            start.wait(timeout=60)
            out: list[str | None] = []
            for at in range(T0, T0 + 40, 4):  # ten batches of four fires each
                out.extend(s.schedule_fire([fire("tick", at + k) for k in range(4)]))
            results.append(out)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for s in stores:
        s.close()

    # Then each fire was recorded by exactly one of them, and each became one job.
    assert not errors, errors
    assert len(results) == len(stores)
    for index in range(40):
        winners = [r[index] for r in results if r[index] is not None]
        assert len(winners) == 1, f"fire {index} recorded {len(winners)} times"
    checker = open_store(store_settings(store_url))
    try:
        assert len(claim(checker, limit=100, tasks=["t"])) == 40
        assert checker.schedule_last_fires()["tick"].fire_at == T0 + 39
    finally:
        checker.close()
