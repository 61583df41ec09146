"""PostgreSQL going away: the whole server for a few seconds, or only the LISTEN
connection a worker waits on."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from offload.ids import uuid7
from offload.settings import Settings
from offload.store import open_store
from offload.testing import wait_for
from offload.types import NewJob
from tests.faults.harness import FaultHarness, figure

OUTAGE = 5.0  # seconds the server stays down (the scenario, not a wait for something)
TOTAL = 5000


class Enqueuer(threading.Thread):
    """Enqueues jobs in small batches until ``total`` were accepted, through the outage.

    ``accepted`` holds every id an enqueue returned; ``attempted`` every id sent in a
    batch that raised (it may or may not have committed).
    """

    def __init__(self, url: str, total: int) -> None:
        super().__init__(name="enqueuer", daemon=True)
        self.store = open_store(Settings(url=url))
        self.total = total
        self.accepted: list[str] = []
        self.attempted: list[str] = []
        self.failures = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while len(self.accepted) < self.total and not self.stop.is_set():
                batch = [
                    NewJob(
                        uuid7(),
                        "tests.faults.apps.work",
                        args=json.dumps(["pg-outage", len(self.accepted) + i, 1]),
                        max_attempts=3,
                    )
                    for i in range(min(10, self.total - len(self.accepted)))
                ]
                try:
                    ids = self.store.job_insert_many(batch)
                except Exception:
                    self.failures += 1
                    self.attempted.extend(j.id for j in batch)
                    self.stop.wait(0.05)  # the store said why; try again shortly
                    continue
                self.accepted.extend(ids)
                self.stop.wait(0.002)  # leave the CPU to the workers between batches
        except BaseException as exc:  # surfaced by the test
            self.error = exc
        finally:
            self.store.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_postgres_killed_for_five_seconds_during_5000_jobs(
    pg_faults: FaultHarness, postgres_server: Any
) -> None:
    h = pg_faults
    workers = [h.start("--concurrency", "1") for _ in range(2)]
    enqueuer = Enqueuer(h.url, TOTAL)
    enqueuer.start()
    try:
        wait_for(lambda: h.ledger_count() >= 500, timeout=60, what="500 jobs done")

        postgres_server.stop("immediate")
        down_at = time.monotonic()
        accepted_before = len(enqueuer.accepted)
        time.sleep(OUTAGE)
        done_in_outage = h.ledger_count()
        postgres_server.start()
        up_at = time.monotonic()
        wait_for(lambda: h.ledger_count() > done_in_outage, timeout=10, what="workers resumed")
        resumed = time.monotonic() - up_at
        outage = up_at - down_at

        enqueuer.join(timeout=60)
        assert not enqueuer.is_alive(), "the enqueuer did not finish"
        assert enqueuer.error is None, enqueuer.error
        assert enqueuer.failures > 0, "no enqueue met the outage"
        assert len(enqueuer.accepted) > accepted_before
        ids = enqueuer.accepted
        wait_for(lambda: h.done_count(ids) == TOTAL, timeout=90, what="every committed job done")
    finally:
        enqueuer.stop.set()
        if not postgres_server.running_fast():
            postgres_server.start()
    assert all(w.popen.poll() is None for w in workers), "a worker died in the outage"
    for worker in workers:
        assert "op=" in worker.log()  # each saw the outage (store.error) and lived
    # An outage longer than the lease (5 s) lets leases run out: a job that finished
    # during the outage may be rescued and run again; its stale outcome is then refused.
    verdict = h.verify(ids, attempted=enqueuer.attempted, may_repeat=h.lease_lost())
    print(
        figure(
            "postgres-down-5s",
            h.backend,
            jobs=TOTAL,
            lost=len(verdict.lost),
            duplicates=len(verdict.duplicates),
            lease_lost=len(h.lease_lost()),
            refused_outcomes=verdict.refused,
            refused_enqueues=enqueuer.failures,
            outage_s=outage,
            recovery_s=resumed,
        )
    )
    verdict.assert_clean()


def _listener_pids(h: FaultHarness) -> list[int]:
    rows = h.sql(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND query ILIKE 'LISTEN%%' AND pid <> pg_backend_pid()"
    )
    return [int(r[0]) for r in rows]


def test_listen_connection_terminated_repeatedly(pg_faults: FaultHarness) -> None:
    h = pg_faults
    poll = 1.0
    worker = h.start("--concurrency", "1", poll_interval=poll)
    latencies = []
    for round_ in range(5):
        (pid,) = wait_for(lambda: _listener_pids(h), timeout=35, what="the worker's LISTEN")
        h.sql("SELECT pg_terminate_backend(%s)", (pid,))
        job = h.task("work").enqueue("listen-killed", round_)
        record = job.wait(timeout=poll + 5).record
        assert record.started_at is not None
        latency = record.started_at - record.created_at  # both on the server's clock
        assert latency <= poll + 1, f"round {round_}: started {latency:.2f} s after enqueue"
        latencies.append(latency)
    # And with the listener back, NOTIFY wakes the worker long before a poll would.
    wait_for(lambda: _listener_pids(h), timeout=35, what="LISTEN back")
    assert worker.popen.poll() is None
    ids = [r[0] for r in h.sql("SELECT id FROM {jobs}")]
    verdict = h.verify(ids)
    print(
        figure(
            "listen-terminated",
            h.backend,
            jobs=len(ids),
            kills=5,
            lost=len(verdict.lost),
            duplicates=len(verdict.duplicates),
            recovery_s=max(latencies),
        )
    )
    verdict.assert_clean()
