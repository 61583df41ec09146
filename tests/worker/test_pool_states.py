"""The job pool's bookkeeping in this process, with fake children: what it does with each
message a child sends, in the orders a real child can send them, and when a fork fails.

Nothing is forked: ``offload.worker.pool.fork`` is replaced by :class:`Forks`, whose
children are pipes the test writes into (as the child would) and reads (what the pool
sent). The pool's pending writes are inspected directly; no claimer runs.
"""

from __future__ import annotations

import collections
import errno
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offload import JobState, Offload
from offload.types import ClaimedJob, Outcome
from offload.worker import protocol
from offload.worker.config import WorkerConfig
from offload.worker.pool import Pool
from offload.worker.process import ChildProcess
from offload.worker.slots import Slot
from offload.worker.supervisor import Supervisor


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.sentinel = 10_000 + pid  # only compared, never waited on
        self.exitcode: int | None = None

    def join(self, timeout: float | None = None) -> None:
        return None


class FakeConn:
    """The supervisor's end of a child's pipe: ``inbox`` is what the child sent."""

    def __init__(self, fd: int) -> None:
        self.inbox: collections.deque[bytes] = collections.deque()
        self.sent: list[dict[str, Any]] = []
        self.fd = fd

    def poll(self, timeout: float = 0) -> bool:
        return bool(self.inbox)

    def recv_bytes(self) -> bytes:
        return self.inbox.popleft()

    def send_bytes(self, data: bytes) -> None:
        self.sent.append(json.loads(data))

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        return None


class FakeChild(ChildProcess):
    def signal(self, signum: int) -> None:
        self.signalled = True
        self.process.exitcode = -signum  # type: ignore[misc]

    def rss(self) -> int:
        return 0

    def sample_rss(self) -> int:
        return 0


class Forks:
    """Stands in for ``offload.worker.pool.fork``; raises OSError while ``failing``."""

    def __init__(self) -> None:
        self.children: list[FakeChild] = []
        self.failing = False
        self.failures = 0

    def __call__(self, app: Offload, target: Any, **kwargs: Any) -> ChildProcess:
        if self.failing:
            self.failures += 1
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        pid = 1_000_000 + len(self.children)
        child = FakeChild(
            process=FakeProcess(pid),  # type: ignore[arg-type]
            conn=FakeConn(pid),  # type: ignore[arg-type]
            process_id=f"{kwargs['worker_id']}/{pid}",
            started_at=time.time(),
        )
        self.children.append(child)
        return child


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> Forks:
    forks = Forks()
    monkeypatch.setattr("offload.worker.pool.fork", forks)
    return forks


@pytest.fixture
def make_pool(tmp_path: Path, forks: Forks) -> Iterator[Any]:
    built: list[Supervisor] = []

    def make(**settings: Any) -> Pool:
        app = Offload(f"sqlite:///{tmp_path / 'jobs.db'}", **settings)
        supervisor = Supervisor(app, WorkerConfig(queues=("default",), concurrency=1))
        built.append(supervisor)
        return supervisor._pool

    yield make
    for supervisor in built:
        supervisor._stops.close()
        supervisor.app.close()


def job(name: str, attempt: int = 1) -> ClaimedJob:
    return ClaimedJob(
        id=name, task="t", queue="default", args="[]", kwargs="{}", attempt=attempt,
        max_attempts=1, errors=0, crashes=0, timeout=None, options="{}",
    )  # fmt: skip


def send(slot: Slot, **message: Any) -> None:
    """Put a message into the pipe from ``slot``'s child, as the child would."""
    slot.child.conn.inbox.append(protocol.encode(message))  # type: ignore[attr-defined]


def done(slot: Slot, claimed: ClaimedJob) -> None:
    outcome = Outcome(claimed.id, claimed.attempt, JobState.SUCCEEDED, worker_id="w")
    send(slot, op="done", outcome=protocol.outcome_to_dict(outcome), peak_rss=0, seconds=1e-4)


def returned(slot: Slot, jobs: list[ClaimedJob]) -> None:
    """The child's "returned" (the ids, and each (id, attempt), as the child sends them)."""
    send(slot, op="returned", jobs=[j.id for j in jobs], runs=[[j.id, j.attempt] for j in jobs])


def turn(pool: Pool, *ready: Any) -> None:
    pool.tick(time.monotonic(), list(ready))


def handed_back(pool: Pool) -> list[tuple[str, int]]:
    return [
        (o.job_id, o.attempt)
        for o in pool._pending.outcomes
        if o.state is JobState.QUEUED and not o.count_error
    ]


def past_start_by(pool: Pool, slot: Slot) -> None:
    """Let the batch's ``start_by`` pass, and the pool act on it (hand back the rest)."""
    assert slot.start_by is not None
    time.sleep(max(0.0, slot.start_by - time.monotonic()) + 0.01)
    turn(pool)


def test_a_retiring_childs_late_returned_does_not_recycle_it_again(
    make_pool: Any, forks: Forks
) -> None:
    pool = make_pool(recycle_min=1, recycle_max=1, batch_wait=0.05)
    pool.start()
    (slot,) = pool.live_slots()
    first, second = job("j1"), job("j2")
    pool.deal([slot], [first, second])
    past_start_by(pool, slot)  # j2 handed back: the child owes a "returned" for it

    # The child finishes j1 (its one job: recycled), then says it returned j2.
    done(slot, first)
    returned(slot, [second])
    turn(pool, slot.child.conn)

    assert len(forks.children) == 2  # the first child and one replacement, not two
    assert pool._retired.count(slot) == 1
    replacement = pool.slots[0]
    assert replacement is not None and replacement.child is forks.children[1]
    assert replacement.idle
    waited = list(pool.waitables())
    assert len(waited) == len(set(waited))  # nothing twice (the wait would raise)
    assert handed_back(pool) == [("j2", 1)]

    # The retired child exits: the replacement serves on, nothing more is forked.
    slot.child.process.exitcode = 0  # type: ignore[misc]
    turn(pool, slot.child.sentinel)
    assert pool.live_slots() == [replacement]
    assert len(forks.children) == 2


def test_a_late_returned_never_hands_back_jobs_of_a_newer_batch(make_pool: Any) -> None:
    pool = make_pool(batch_wait=0.05)
    pool.start()
    (slot,) = pool.live_slots()
    j1, j2, j3 = job("j1"), job("j2"), job("j3")
    pool.deal([slot], [j1, j2, j3])
    past_start_by(pool, slot)  # j2 and j3 handed back while j1 runs
    assert handed_back(pool) == [("j2", 1), ("j3", 1)]

    # The child's "done" for j1 is read before its "returned" for j2 and j3 arrives.
    done(slot, j1)
    turn(pool, slot.child.conn)
    # A claim now would deal to every idle slot: j2 again (its next attempt) and j4.
    again, j4 = job("j2", attempt=2), job("j4")
    if pool.idle_slots():
        pool.deal(pool.idle_slots(), [again, j4])
    returned(slot, [j2, j3])
    turn(pool, slot.child.conn)

    # Only the old batch was handed back, once each; whatever the slot was sent since is
    # the child's to run.
    assert handed_back(pool) == [("j2", 1), ("j3", 1)]
    runs = [(m["jobs"][0]["id"], m["jobs"][0]["attempt"]) for m in slot.child.conn.sent]  # type: ignore[attr-defined]
    if len(runs) > 1:  # the new batch went out (after the "returned"): the slot holds it
        assert slot.job is not None and (slot.job.id, slot.job.attempt) == runs[-1]
    # And the slot takes a batch once the "returned" is read.
    assert pool.idle_slots() == [slot] or slot.job is not None


def test_no_new_batch_goes_to_a_child_that_still_owes_a_returned(make_pool: Any) -> None:
    pool = make_pool(batch_wait=0.05)
    pool.start()
    (slot,) = pool.live_slots()
    j1, j2 = job("j1"), job("j2")
    pool.deal([slot], [j1, j2])
    past_start_by(pool, slot)
    done(slot, j1)
    turn(pool, slot.child.conn)

    assert not pool.has_idle()  # the child's "returned" for j2 is still due
    returned(slot, [j2])
    turn(pool, slot.child.conn)
    assert pool.idle_slots() == [slot]
    assert handed_back(pool) == [("j2", 1)]


def test_reports_of_an_earlier_attempt_are_not_taken_for_the_running_one(
    make_pool: Any,
) -> None:
    pool = make_pool()
    pool.start()
    (slot,) = pool.live_slots()
    pool.deal([slot], [job("j1", attempt=2)])
    send(slot, op="progress", job="j1", attempt=1, current=5.0, total=None, message=None)
    send(slot, op="save", job="j1", attempt=1, key="k", value="1")
    turn(pool, slot.child.conn)

    assert pool._pending.progress == {}
    assert pool._pending.saves == []


def test_a_malformed_report_is_dropped_and_the_next_ones_are_read(make_pool: Any) -> None:
    pool = make_pool()
    pool.start()
    (slot,) = pool.live_slots()
    j1 = job("j1")
    pool.deal([slot], [j1])
    send(slot, op="progress", job="j1", attempt=1, current="lots", total=None, message=None)
    done(slot, j1)
    turn(pool, slot.child.conn)

    assert slot.job is None and slot.idle
    assert [(o.job_id, o.state) for o in pool._pending.outcomes] == [("j1", JobState.SUCCEEDED)]


def test_a_fork_that_fails_while_recycling_is_retried_and_the_slot_kept(
    make_pool: Any, forks: Forks
) -> None:
    pool = make_pool(recycle_min=1, recycle_max=1)
    pool.start()
    (slot,) = pool.live_slots()
    j1 = job("j1")
    pool.deal([slot], [j1])

    forks.failing = True
    done(slot, j1)
    turn(pool, slot.child.conn)

    assert forks.failures == 1
    assert not slot.child.eof  # the fork's error is not this child's
    assert [(o.job_id, o.state) for o in pool._pending.outcomes] == [("j1", JobState.SUCCEEDED)]
    retry_at = pool.next_at()
    assert retry_at is not None and retry_at > time.monotonic()  # a retry, with backoff

    # The retiring child exits meanwhile; the slot still gets its child once forks work.
    slot.child.process.exitcode = 0  # type: ignore[misc]
    turn(pool, slot.child.sentinel)
    forks.failing = False
    deadline = time.monotonic() + 5
    while len(forks.children) < 2 and time.monotonic() < deadline:
        at = pool.next_at()
        time.sleep(max(0.0, min(0.1, (at or 0) - time.monotonic())))
        turn(pool)
    assert len(forks.children) == 2
    replacement = pool.slots[0]
    assert replacement is not None and replacement.child is forks.children[1]
    assert pool.idle_slots() == [replacement]


def test_a_fork_that_fails_at_start_is_retried_with_backoff(make_pool: Any, forks: Forks) -> None:
    pool = make_pool()
    forks.failing = True
    pool.start()  # does not raise
    turn(pool)
    turn(pool)
    assert forks.failures == 1  # not retried on every turn: it backs off
    forks.failing = False
    deadline = time.monotonic() + 5
    while not forks.children and time.monotonic() < deadline:
        time.sleep(0.05)
        turn(pool)
    assert len(pool.idle_slots()) == 1


def test_a_job_that_cannot_be_dispatched_fails_and_the_rest_of_its_batch_goes_out(
    make_pool: Any,
) -> None:
    pool = make_pool()
    pool.start()
    (slot,) = pool.live_slots()
    good, bad_args, bad_timeout = job("good"), job("args"), job("timeout")
    bad_args = ClaimedJob(**{**protocol.job_to_dict(bad_args), "args": b"\x00\xff"})
    bad_timeout = ClaimedJob(**{**protocol.job_to_dict(bad_timeout), "timeout": "soon"})
    pool.deal([slot], [bad_args, good, bad_timeout])

    failed = {o.job_id: o for o in pool._pending.outcomes}
    assert set(failed) == {"args", "timeout"}
    for name, outcome in failed.items():
        assert outcome.state is JobState.FAILED
        error = json.loads(outcome.error or "{}")
        assert error["type"] == "DispatchError"
        assert f"{name} holds" in error["message"], error
    assert slot.job is not None and slot.job.id == "good" and slot.waiting == []
    (sent,) = slot.child.conn.sent  # type: ignore[attr-defined]
    assert [j["id"] for j in sent["jobs"]] == ["good"]


def test_a_waiting_job_whose_lease_was_lost_stays_in_the_batch_and_never_runs_here(
    make_pool: Any,
) -> None:
    from offload.worker.maintenance.leases import LeaseRenewal

    pool = make_pool(batch_wait=60)
    pool.start()
    (slot,) = pool.live_slots()
    j1, j2, j3 = job("j1"), job("j2"), job("j3")
    pool.deal([slot], [j1, j2, j3])
    LeaseRenewal(pool._shared, pool)._settle(["j2"], [])  # another worker owns j2 now

    done(slot, j1)
    turn(pool, slot.child.conn)
    # The child starts j2 next (it holds the whole batch): the slot says so, and the
    # child is killed, so no second copy of j2 runs.
    assert slot.job is not None and slot.job.id == "j2"
    assert slot.child.signalled
    turn(pool, slot.child.sentinel)
    assert handed_back(pool) == [("j3", 1)]  # j2 is not this worker's to requeue
