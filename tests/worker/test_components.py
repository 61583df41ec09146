"""The supervisor's parts in this process, without forking: the loop's wait timeout, the
maintenance round, batch sizes and how a run ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from offload import JobState, Offload
from offload.types import Outcome
from offload.worker.batching import BatchSizer
from offload.worker.component import Component
from offload.worker.config import DrainSummary, Stats, WorkerConfig
from offload.worker.endings import event_of
from offload.worker.maintenance import Duty, Maintenance
from offload.worker.supervisor import MAX_WAIT, Supervisor
from offload.worker.writes import Recorder, StoreGuard


class Fixed(Component):
    """A component that always needs a turn at ``at`` (None: never)."""

    def __init__(self, at: float | None) -> None:
        self.at = at

    def next_at(self) -> float | None:
        return self.at

    def tick(self, now: float, ready: Sequence[Any]) -> None:
        pass


def test_wait_timeout_is_the_earliest_moment_of_any_component(tmp_path: Path) -> None:
    app = Offload(f"sqlite:///{tmp_path / 'jobs.db'}")
    supervisor = Supervisor(app, WorkerConfig(queues=("default",), concurrency=1))
    now = time.monotonic()

    supervisor._components = (Fixed(None), Fixed(now + 0.3), Fixed(now + 0.6))
    assert 0.25 < supervisor._timeout() <= 0.3
    supervisor._components = (Fixed(None), Fixed(now - 5))
    assert supervisor._timeout() == 0.0  # a moment already past: at once
    supervisor._components = (Fixed(None), Fixed(now + 60))
    assert MAX_WAIT - 0.05 < supervisor._timeout() <= MAX_WAIT
    supervisor._stops.close()
    app.close()


class Step(Duty):
    def __init__(self, name: str, calls: list[str], ok: bool = True) -> None:
        self.name, self.calls, self.ok = name, calls, ok

    def run(self) -> bool:
        self.calls.append(self.name)
        return self.ok

    def between(self) -> None:
        self.calls.append(f"between {self.name}")


def test_maintenance_runs_its_duties_in_order_and_stops_at_the_first_failure() -> None:
    calls: list[str] = []
    duties = [Step("leases", calls), Step("rows", calls, ok=False), Step("rescue", calls)]
    maintenance = Maintenance(5.0, duties)

    maintenance.tick(100.0, [])
    assert calls == ["leases", "rows"]  # the store failed at rows: no rescue this round
    assert maintenance.next_at() == 105.0  # moved into the future once acted on

    calls.clear()
    maintenance.tick(101.0, [])
    assert calls == ["between leases", "between rows", "between rescue"]


def test_batches_form_only_while_every_queue_runs_tiny_jobs() -> None:
    sizer = BatchSizer(("a", "b"), batch_max=8, batch_wait=0.05)
    assert sizer.size() == 1  # nothing measured yet
    sizer.note("a", 0.0001)
    assert sizer.size() == 1  # queue b not measured yet
    sizer.note("b", 0.0001)
    assert sizer.size() == 8
    sizer.note("b", "not a number")
    assert sizer.size() == 8
    for _ in range(20):
        sizer.note("b", 0.01)
    assert sizer.size() == 1  # b's jobs now take 10 ms
    assert BatchSizer(("a",), batch_max=1, batch_wait=0.05).size() == 1


def test_outcomes_are_logged_under_the_event_of_how_they_ended() -> None:
    def outcome(state: JobState, **fields: Any) -> Outcome:
        return Outcome("job", 1, state, **fields)

    assert event_of(outcome(JobState.SUCCEEDED)) == "job.succeeded"
    assert event_of(outcome(JobState.FAILED)) == "job.failed"
    assert event_of(outcome(JobState.QUARANTINED, crashed=True)) == "job.quarantined"
    assert event_of(outcome(JobState.QUEUED, crashed=True, count_error=False)) == "job.crashed"
    assert event_of(outcome(JobState.QUEUED)) == "job.retry"
    assert event_of(outcome(JobState.QUEUED, count_error=False)) == "job.requeued"


def test_a_budget_ends_a_worker_that_does_not_exit_when_idle(tmp_path: Path) -> None:
    # The budget's moment is in every wait's timeout; once past, it must be acted on (the
    # worker stops) or the loop turns without waiting, at 100% CPU.
    app = Offload(f"sqlite:///{tmp_path / 'jobs.db'}")
    app.migrate()
    config = WorkerConfig(queues=("default",), concurrency=1, budget=0.3)
    supervisor = Supervisor(app, config)
    turns = 0
    turn = supervisor._turn

    def counted() -> None:
        nonlocal turns
        turns += 1
        turn()

    supervisor._turn = counted  # type: ignore[method-assign]
    safety = threading.Timer(4.0, supervisor.request_stop, kwargs={"fast": True})
    safety.start()
    began = time.monotonic()
    try:
        supervisor.run()
    finally:
        safety.cancel()
        app.close()

    assert time.monotonic() - began < 3.0
    assert turns < 50, f"{turns} turns in {time.monotonic() - began:.1f} s"


class Writes:
    """A store that accepts every outcome but those of the job ``stale``."""

    def job_write(self, *, outcomes: Sequence[Outcome], **_: Any) -> list[bool]:
        return [o.job_id != "stale" for o in outcomes]

    def process_stop(self, ids: Sequence[str]) -> None:
        return None


def test_outcomes_are_counted_by_how_they_ended_once_the_store_answered() -> None:
    stats, tally = Stats(), Stats()
    recorder = Recorder(lambda: Writes(), StoreGuard("w"), stats)  # type: ignore[arg-type,return-value]
    error = {"count_error": True}
    recorder.pending.outcomes = [
        Outcome("ok", 1, JobState.SUCCEEDED),
        Outcome("stale", 1, JobState.SUCCEEDED),  # refused: neither succeeded nor failed
        Outcome("raised", 1, JobState.QUEUED, delay=5.0, **error),  # retried
        Outcome("crashed", 1, JobState.QUEUED, count_error=False, crashed=True),  # retried
        Outcome("last", 3, JobState.FAILED),
        Outcome("crashy", 1, JobState.QUARANTINED, count_error=False, crashed=True),
        Outcome("cancel", 1, JobState.CANCELLED, count_error=False),
        Outcome("back", 1, JobState.QUEUED, count_error=False),  # requeued: not a run
    ]
    recorder.pending.tallies[("stale", 1)] = tally
    recorder.pending.tallies[("ok", 1)] = tally

    assert recorder.flush(force=True)

    counts = (stats.succeeded, stats.retried, stats.failed, stats.refused, stats.requeued)
    assert counts == (1, 2, 3, 1, 1)
    assert (stats.run, stats.served, stats.errors) == (7, 6, 5)
    assert (tally.run, tally.succeeded, tally.refused) == (2, 1, 1)
    summary = DrainSummary.of(stats, 1.25)
    assert summary.line() == "drain: 7 runs: 1 succeeded, 2 retried, 3 failed, 1 refused in 1.2 s"
    assert DrainSummary.of(Stats(succeeded=1), 0.5).line().startswith("drain: 1 run: 1 succeeded")
