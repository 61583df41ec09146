"""The supervisor's parts in this process, without forking: the loop's wait timeout, the
maintenance round, batch sizes and how a run ends."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from offload import JobState, Offload
from offload.types import Outcome
from offload.worker.batching import BatchSizer
from offload.worker.component import Component
from offload.worker.config import WorkerConfig
from offload.worker.endings import event_of
from offload.worker.maintenance import Duty, Maintenance
from offload.worker.supervisor import MAX_WAIT, Supervisor


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
