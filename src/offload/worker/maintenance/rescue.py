"""Lease rescue: requeue the jobs of any worker whose lease expired (a dead or frozen
worker), counted as a crash of that run; a job whose cancel was requested ends cancelled
instead. On SQLite a lease expires by the host's monotonic clock, so a step of the wall
clock neither rescues a healthy worker's jobs nor delays the rescue of a dead one's."""

from __future__ import annotations

from collections.abc import Callable

from offload import logs
from offload.types import JobState
from offload.worker.component import Shared
from offload.worker.maintenance import Duty


class LeaseRescue(Duty):
    """Rescues expired leases; ``on_rescued()`` tells the claimer the jobs are due now."""

    def __init__(self, shared: Shared, on_rescued: Callable[[], None]) -> None:
        self._shared = shared
        self._on_rescued = on_rescued

    def run(self) -> bool:
        shared = self._shared
        rescued = shared.guard.call(
            "lease_rescue",
            lambda: shared.store.lease_rescue_expired(crash_limit=shared.settings.crash_limit),
        )
        for item in rescued or ():
            logs.log(
                "job.rescued", "warning", job=item.job_id, attempt=item.attempt,
                state=item.state.value, reason="lease expired",
            )  # fmt: skip
            if item.state is JobState.QUEUED:
                self._on_rescued()  # rescued jobs are due now
        return rescued is not None
