"""What schedule tests read back: every fire record of a store, read with plain SQL (the
oracle, independent of the store code under test), and fires planted as a past
scheduler would have recorded them."""

from __future__ import annotations

import sqlite3

from offload.ids import uuid7
from offload.store import Store
from offload.types import NewJob, ScheduleFire
from tests.worker.schedule_apps import PREFIX


def fire_rows(url: str) -> list[tuple[str, int, str]]:
    """Every ``(schedule, fire_at, job_id)`` recorded in the store at ``url``, in order."""
    query = "SELECT schedule, fire_at, job_id FROM {table} ORDER BY schedule, fire_at"
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///") :], timeout=30)
        try:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'offload_schedule_fires'"
            ).fetchone()
            if not exists:  # no worker has opened the file yet
                return []
            rows = conn.execute(query.format(table="offload_schedule_fires")).fetchall()
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(url) as pg:
            rows = pg.execute(query.format(table="offload.schedule_fires")).fetchall()
    return [(str(s), int(t), str(j)) for s, t, j in rows]


def fires_of(url: str, schedule: str) -> list[int]:
    return [t for s, t, _ in fire_rows(url) if s == schedule]


def plant(store: Store, schedule: str, fire_at: int, task: str = "dst") -> str:
    """Record a fire as a scheduler that ran earlier would have (with its job)."""
    job = NewJob(uuid7(), f"{PREFIX}.{task}", args='["planted"]')
    (job_id,) = store.schedule_fire([ScheduleFire(schedule, fire_at, job)])
    assert job_id == job.id
    return job.id
