"""SQLite judges leases and heartbeats by the host's monotonic clock: a process whose wall
clock is hours off (``OFFLOAD_TEST_CLOCK_OFFSET``, the way a wall-clock step looks to
the rows written before it) neither loses a healthy lease nor keeps a dead one for hours.

The claims are made by real processes with a shifted wall clock; the rescues here, with
the true one."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from offload.errors import ConfigError
from offload.settings import Settings
from offload.store.sqlite import SQLiteStore, clock
from offload.testing import wait_for
from offload.types import JobState, NewJob, ProcessInfo

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0

#: Claims every due job of task "t" with a lease of argv[2] seconds; prints the store's now.
CLAIM = """
import json, sys
from offload.settings import Settings
from offload.store.sqlite import SQLiteStore
store = SQLiteStore(Settings(url=sys.argv[1]))
jobs = store.job_claim(worker_id="shifted", queues=["default"], tasks=["t"], limit=10,
                       lease=float(sys.argv[2]))
print(json.dumps({"now": store.now(), "claimed": [j.id for j in jobs]}))
store.close()
"""


@pytest.fixture
def store(sqlite_url: str) -> Iterator[SQLiteStore]:
    s = SQLiteStore(Settings(url=sqlite_url))
    s.migrate()
    yield s
    s.close()


def claim_shifted(store: SQLiteStore, offset: float, lease: float) -> dict[str, object]:
    """Claim in another process whose wall clock is ``offset`` seconds off."""
    env = {**os.environ, clock.TEST_OFFSET_VARIABLE: str(offset)}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", CLAIM, store.url, str(lease)],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    out: dict[str, object] = json.loads(done.stdout)
    return out


def sql(store: SQLiteStore, statement: str, *params: object) -> None:
    conn = sqlite3.connect(store.path)
    with conn:
        conn.execute(statement, params)
    conn.close()


def one_job(store: SQLiteStore) -> str:
    """A job due by every clock of these tests (scheduled times follow the wall clock)."""
    job = NewJob(id=f"job-{os.urandom(4).hex()}", task="t", run_at=time.time() - 3 * HOUR)
    (job_id,) = store.job_insert_many([job])
    return job_id


def test_the_offset_shifts_the_wall_clock_of_that_process_only(store: SQLiteStore) -> None:
    one_job(store)
    out = claim_shifted(store, -2 * HOUR, lease=30)
    assert abs(float(out["now"]) - (store.now() - 2 * HOUR)) < 60  # type: ignore[arg-type]


def test_a_healthy_lease_written_by_a_clock_an_hour_behind_is_not_rescued(
    store: SQLiteStore,
) -> None:
    # Its leased_until is an hour in the past by this process's clock, as every lease
    # looks right after the wall clock steps forward an hour.
    job_id = one_job(store)
    assert claim_shifted(store, -HOUR, lease=30)["claimed"] == [job_id]
    record = store.job_get(job_id)
    assert record is not None and record.leased_until is not None
    assert record.leased_until < store.now() - HOUR + 60  # expired, by the wall clock
    assert store.lease_rescue_expired(crash_limit=3) == []
    record = store.job_get(job_id)
    assert record is not None and record.state is JobState.RUNNING and record.crashes == 0


def test_a_dead_lease_written_by_a_clock_two_hours_ahead_expires_within_its_length(
    store: SQLiteStore,
) -> None:
    # Its leased_until is two hours ahead by this process's clock, as every lease looks
    # right after the wall clock steps back two hours; the claiming process is gone.
    job_id = one_job(store)
    assert claim_shifted(store, 2 * HOUR, lease=1)["claimed"] == [job_id]
    (rescued,) = wait_for(
        lambda: store.lease_rescue_expired(crash_limit=3), timeout=30, what="the rescue"
    )
    assert (rescued.job_id, rescued.state) == (job_id, JobState.QUEUED)


def test_a_lease_taken_on_an_earlier_boot_has_expired(store: SQLiteStore) -> None:
    job_id = one_job(store)
    store.job_claim(worker_id="w", queues=["default"], tasks=["t"], limit=1, lease=3600)
    sql(store, "UPDATE offload_jobs SET lease_boot = 'an-earlier-boot' WHERE id = ?", job_id)
    (rescued,) = store.lease_rescue_expired(crash_limit=3)
    assert rescued.job_id == job_id


@pytest.mark.parametrize(
    "boot, mono", [(None, None), ("x", None), (None, 1.0), (b"\x00", 1.0), ("same", "soon")]
)
def test_a_lease_without_a_usable_monotonic_end_expires_by_the_wall_clock(
    store: SQLiteStore, boot: object, mono: object
) -> None:
    # Rows of a host that publishes no boot id, or holding what no claim writes.
    boot = clock.boot_id() if boot == "same" else boot
    live, dead = one_job(store), one_job(store)
    store.job_claim(worker_id="w", queues=["default"], tasks=["t"], limit=2, lease=3600)
    sql(store, "UPDATE offload_jobs SET lease_boot = ?, lease_mono = ?", boot, mono)
    sql(store, "UPDATE offload_jobs SET leased_until = 0 WHERE id = ?", dead)
    rescued = store.lease_rescue_expired(crash_limit=3)
    assert [r.job_id for r in rescued] == [dead]
    record = store.job_get(live)
    assert record is not None and record.state is JobState.RUNNING


def test_a_lease_renewed_by_a_shifted_clock_runs_from_the_renewal(store: SQLiteStore) -> None:
    job_id = one_job(store)
    (c,) = store.job_claim(worker_id="w", queues=["default"], tasks=["t"], limit=1, lease=0.2)
    renewed = store.lease_renew(worker_id="w", runs=[(job_id, c.attempt)], lease=3600)
    assert renewed.lost == []
    sql(store, "UPDATE offload_jobs SET leased_until = 0 WHERE id = ?", job_id)
    assert store.lease_rescue_expired(crash_limit=3) == []


def test_a_process_is_judged_gone_by_the_monotonic_clock(store: SQLiteStore) -> None:
    beat = ProcessInfo(id="p", kind="supervisor", host="h", pid=1, info='{"heartbeat": 60}')
    store.process_heartbeat([beat, ProcessInfo(id="q", kind="supervisor", host="h", pid=2)])
    # An hour without a heartbeat by the wall clock (as after a step forward): running.
    sql(store, "UPDATE offload_processes SET heartbeat_at = heartbeat_at - 3600")
    assert {p.id: p.status for p in store.process_list(gone_after=60)} == {
        "p": "running",
        "q": "running",
    }
    # A row of an earlier boot is gone; one without a boot id is judged by the wall clock.
    sql(store, "UPDATE offload_processes SET boot_id = 'an-earlier-boot' WHERE id = 'p'")
    sql(store, "UPDATE offload_processes SET boot_id = NULL WHERE id = 'q'")
    assert {p.id: p.status for p in store.process_list(gone_after=60)} == {
        "p": "gone",
        "q": "gone",
    }


def test_a_process_silent_by_the_monotonic_clock_is_gone_whatever_the_wall_clock(
    store: SQLiteStore,
) -> None:
    store.process_heartbeat([ProcessInfo(id="p", kind="supervisor", host="h", pid=1)])
    # A heartbeat an hour ahead by the wall clock (as before a step back), ten minutes
    # ago by the monotonic one.
    sql(
        store,
        "UPDATE offload_processes SET heartbeat_at = heartbeat_at + 3600,"
        " beat_mono = beat_mono - 600",
    )
    (p,) = store.process_list(gone_after=60)
    assert p.status == "gone"


@pytest.mark.parametrize("raw", ["soon", "nan", "inf", "1e12"])
def test_a_bad_offset_is_refused_naming_the_variable(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(clock.TEST_OFFSET_VARIABLE, raw)
    clock._offset.cache_clear()
    try:
        with pytest.raises(ConfigError, match=clock.TEST_OFFSET_VARIABLE):
            clock.wall()
    finally:
        monkeypatch.delenv(clock.TEST_OFFSET_VARIABLE)
        clock._offset.cache_clear()
    assert abs(clock.wall() - time.time()) < 1
