"""Lease renewal: extend the leases of every job the pool holds, and act on what the store
says back (a lease lost to another worker, a cancel someone asked for)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from offload import logs
from offload.worker.component import Shared
from offload.worker.maintenance import Duty
from offload.worker.pool import Pool
from offload.worker.slots import Ending


class LeaseRenewal(Duty):
    """Renews the leases of the pool's jobs and of outcomes not yet written."""

    def __init__(self, shared: Shared, pool: Pool) -> None:
        self._shared = shared
        self._pool = pool

    def run(self) -> bool:
        shared = self._shared
        runs = self._pool.runs()
        # Outcomes not yet written still need their lease, or another worker would rescue
        # (and run again) a job that already finished here.
        runs.extend((o.job_id, o.attempt) for o in shared.recorder.pending.outcomes)
        renewed = shared.guard.call(
            "lease_renew",
            lambda: shared.store.lease_renew(
                worker_id=shared.worker_id, runs=runs, lease=shared.settings.lease
            ),
        )
        if renewed is None:
            return False
        self._settle(renewed.lost, renewed.cancel_requested)
        return True

    def _settle(self, lost: Sequence[str], cancel: Sequence[str]) -> None:
        lost_ids, cancel_ids = set(lost), set(cancel)
        for slot in self._pool.live_slots():
            for waiting in slot.waiting:
                run = (waiting.id, waiting.attempt)
                if waiting.id in lost_ids:
                    # Another worker owns it now: nothing of it is recorded here. It stays
                    # in the batch, as the child still holds it (the slot's view must match
                    # what the child will run); the child is killed if it comes to start it.
                    if run not in slot.lost:
                        slot.lost.add(run)
                        logs.log("job.lost", "warning", job=waiting.id, attempt=waiting.attempt)
                elif waiting.id in cancel_ids:
                    slot.child.send({"op": "cancel", "job": waiting.id})
            job = slot.job
            if job is None:
                continue
            if job.id in lost_ids and slot.ending is not Ending.LOST:
                # Another worker owns this job now; a second copy must not keep running.
                logs.log("job.lost", "warning", job=job.id, attempt=job.attempt, pid=slot.pid)
                slot.kill_job(Ending.LOST)
            elif job.id in cancel_ids and not slot.cancel_sent:
                # Once per run: a job that never reads the flag never drains its pipe, and
                # repeated sends would fill it and block the supervisor.
                slot.cancel_sent = True
                slot.cancel_by = time.monotonic() + self._shared.settings.cancel_grace
                slot.child.send({"op": "cancel", "job": job.id})
