"""``offload prune``, run as cron runs it: a real subprocess on a real store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from offload import Offload
from offload.store.sqlite import database_path
from offload.testing import run_pending

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400.0


def offload(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m offload <args> --url <url>`` with only these ``OFFLOAD_*`` variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    return subprocess.run(
        [sys.executable, "-m", "offload", *args, "--url", url],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


class Shop:
    """An app on the test's store with a task of each outcome, run in this process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.app = Offload(url)

        @self.app.task(name="shop.receipt")
        def receipt(n: int) -> int:
            return n

        @self.app.task(name="shop.charge", retries=0)
        def charge(n: int) -> int:
            raise ValueError("card declined")

        self.receipt, self.charge = receipt, charge

    def finished(self, task: Any, n: int = 1, ago: float = 0.0) -> list[str]:
        jobs = [task.enqueue(i) for i in range(n)]
        run_pending(self.app)
        ids = [job.id for job in jobs]
        if ago:
            self.age(ago, *ids)
        return ids

    def cancelled(self, ago: float) -> str:
        job = self.receipt.using(delay=3600).enqueue(0)
        job.cancel()
        self.age(ago, job.id)
        return job.id

    def age(self, seconds: float, *ids: str) -> None:
        marks = ",".join("?" * len(ids))
        statement = f"UPDATE {{jobs}} SET finished_at = finished_at - ? WHERE id IN ({marks})"
        if self.url.startswith("sqlite"):
            with sqlite3.connect(database_path(self.url), isolation_level=None) as conn:
                conn.execute(statement.format(jobs="offload_jobs"), (seconds, *ids))
            return
        with psycopg.connect(self.url, autocommit=True) as pg:
            pg.execute(statement.format(jobs="offload.jobs").replace("?", "%s").encode(),
                       (seconds, *ids))  # fmt: skip

    def alive(self, *ids: str) -> list[bool]:
        return [self.app.store.job_get(j) is not None for j in ids]


@pytest.fixture
def shop(store_url: str) -> Iterator[Shop]:
    s = Shop(store_url)
    yield s
    s.app.close()


@pytest.fixture
def lite(sqlite_url: str) -> Iterator[Shop]:
    s = Shop(sqlite_url)
    yield s
    s.app.close()


def test_prune_deletes_what_is_past_retention_and_prints_it_by_state(shop: Shop) -> None:
    old_ok = shop.finished(shop.receipt, 3, ago=8 * DAY)
    old_failed = shop.finished(shop.charge, 1, ago=31 * DAY)
    old_cancelled = shop.cancelled(ago=8 * DAY)
    kept = shop.finished(shop.receipt, 1, ago=6 * DAY) + shop.finished(shop.charge, 1, ago=8 * DAY)

    out = offload(shop.url, "prune")

    assert out.returncode == 0, out.stderr
    first, *rest = out.stdout.splitlines()
    assert first.startswith("pruned 5 jobs (succeeded 3, failed 1, cancelled 1), 9 events, ")
    assert "in 1 batch" in first and "succeeded 7d, failed 30d" in first
    assert rest == [
        "  succeeded    3",
        "  failed       1",
        "  cancelled    1",
        "  quarantined  0",
    ]
    assert shop.alive(*old_ok, *old_failed, old_cancelled) == [False] * 5
    assert shop.alive(*kept) == [True, True]


def test_dry_run_counts_and_deletes_nothing(lite: Shop) -> None:
    old = lite.finished(lite.receipt, 2, ago=8 * DAY)

    out = offload(lite.url, "prune", "--dry-run")

    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("would prune 2 jobs (succeeded 2), 4 events, 0 messages")
    assert lite.alive(*old) == [True, True]


def test_older_than_and_state_choose_what_goes_whatever_tasks_declared(lite: Shop) -> None:
    keep_forever = lite.charge.using(retention="forever")
    failed = lite.finished(keep_forever, 1, ago=2 * 3600)
    young = lite.finished(lite.charge, 1, ago=600)
    succeeded = lite.finished(lite.receipt, 1, ago=2 * 3600)

    out = offload(lite.url, "prune", "--older-than", "1h", "--state", "failed")

    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        out.stdout.splitlines()[0],
        "  failed       1",
    ]
    assert "failed 1h (tasks' own retention ignored)" in out.stdout
    assert lite.alive(*failed, *young, *succeeded) == [False, True, True]


def test_retention_comes_from_the_environment_and_from_the_jobs(lite: Shop) -> None:
    hourly = lite.finished(lite.receipt.using(retention=3600), 1, ago=2 * 3600)
    plain = lite.finished(lite.receipt, 1, ago=2 * 3600)
    failed = lite.finished(lite.charge, 1, ago=2 * 3600)

    # Without --app: the job's own retention travels with it. The settings say 1 day.
    out = offload(
        lite.url, "prune", OFFLOAD_RETENTION_SUCCEEDED="1d", OFFLOAD_RETENTION_FAILED="90m"
    )
    assert out.returncode == 0, out.stderr
    assert "pruned 2 jobs (succeeded 1, failed 1)" in out.stdout
    assert lite.alive(*hourly, *plain, *failed) == [False, True, False]

    out = offload(lite.url, "prune", OFFLOAD_RETENTION_SUCCEEDED="1h")
    assert "pruned 1 job (succeeded 1)" in out.stdout
    assert lite.alive(*plain) == [False]


def test_a_backlog_goes_in_batches_of_prune_batch(lite: Shop) -> None:
    old = lite.finished(lite.receipt, 5, ago=8 * DAY)

    out = offload(lite.url, "prune", OFFLOAD_PRUNE_BATCH="2")

    assert out.returncode == 0, out.stderr
    assert "pruned 5 jobs (succeeded 5)" in out.stdout and "in 3 batches" in out.stdout
    assert lite.alive(*old) == [False] * 5


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--older-than", "soon"], {}, "Invalid value for '--older-than': expected seconds"),
        (["--older-than", "forever"], {}, "Invalid value for '--older-than'"),
        (["--state", "running"], {}, "Invalid value for '--state': 'running' is not one of"),
        ([], {"OFFLOAD_RETENTION_FAILED": "-1"}, "OFFLOAD_RETENTION_FAILED: expected"),
        ([], {"OFFLOAD_PRUNE_BATCH": "0"}, "expected prune_batch to be an int from 1 to 10000"),
    ],
)
def test_bad_input_exits_2_without_a_traceback(
    lite: Shop, args: list[str], env: dict[str, str], message: str
) -> None:
    old = lite.finished(lite.receipt, 1, ago=8 * DAY)

    out = offload(lite.url, "prune", *args, **env)

    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert lite.alive(*old) == [True]


def test_a_store_that_cannot_be_opened_exits_1(tmp_path: Path) -> None:
    out = offload(f"sqlite:///{tmp_path / 'missing' / 'jobs.db'}", "prune")

    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
