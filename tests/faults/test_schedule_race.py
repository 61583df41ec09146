"""Two supervisors race for one every-second schedule: each fire becomes exactly one job
(none twice, none lost), also when one of them is SIGKILLed mid-run and started again.

The oracle is the store's fire table read with plain SQL, the jobs of the schedule's task,
and the ledger the jobs write. The short runs always run; the 60-second ones are marked
slow (they still run in the default suite).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from offload.testing import wait_for
from offload.types import JobFilter, JobState
from tests.faults.harness import figure
from tests.fixtures.processes import WorkerProcess
from tests.worker.conftest import Harness
from tests.worker.schedule_apps import PREFIX
from tests.worker.schedule_checks import fire_rows

APP = "tests.worker.schedule_apps:app"
SCHEDULE = "every-second"


@pytest.fixture
def racers(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setenv("SCHEDULE_TEST_SET", SCHEDULE)
    h = Harness(tmp_path, store_url)
    yield h
    h.close()


def _start(h: Harness) -> WorkerProcess:
    proc = h.start("worker", "--concurrency", "1", app=APP)
    wait_for(lambda: "event=scheduler.started" in proc.log(), timeout=60, what="scheduler")
    return proc


def _sleep_until(wall: float) -> None:
    while (left := wall - time.time()) > 0:
        time.sleep(min(left, 0.05))


def _race(h: Harness, seconds: int, kills: bool) -> None:
    # Given two supervisors firing the same schedule.
    procs = [_start(h), _start(h)]
    begin = int(time.time()) + 2
    end = begin + seconds  # the window judged: fire times begin .. end - 1

    # When they run for `seconds` (with kills: the first is SIGKILLed a third of the way
    # in, just after a fire time, while both are recording it, and started again; the
    # other at two thirds).
    if kills:
        for victim, moment in ((0, begin + seconds // 3), (1, begin + 2 * seconds // 3)):
            _sleep_until(moment + 0.005)
            procs[victim].signal(signal.SIGKILL)
            procs[victim].wait(timeout=30)
            procs[victim] = _start(h)
    wait_for(
        lambda: any(t >= end for s, t, _ in fire_rows(h.url) if s == SCHEDULE),
        timeout=seconds + 120, interval=0.2, what=f"the fire of {end}",
    )  # fmt: skip
    # Every job of the window has run (killed runs are rescued after the lease).
    rows = [r for r in fire_rows(h.url) if r[0] == SCHEDULE]
    store = h.app.store
    wait_for(
        lambda: all(
            (job := store.job_get(j)) is not None and job.state is JobState.SUCCEEDED
            for _, t, j in rows
            if begin <= t < end
        ),
        timeout=120, interval=0.2, what="the window's jobs to succeed",
    )  # fmt: skip
    for proc in procs:
        proc.signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(timeout=60) == 0, proc.log()

    # Then the window holds one fire per second, each its own job, and no job of the
    # schedule's task exists without its fire.
    rows = [r for r in fire_rows(h.url) if r[0] == SCHEDULE]
    window = [t for _, t, _ in rows if begin <= t < end]
    assert window == list(range(begin, end)), f"missing {set(range(begin, end)) - set(window)}"
    job_ids = [j for _, _, j in rows]
    assert len(set(job_ids)) == len(job_ids)
    jobs = store.job_list(JobFilter(task=f"{PREFIX}.tick", limit=100_000))
    assert sorted(j.id for j in jobs) == sorted(job_ids)
    ran = {j for j, *_ in h.rows("done")}
    in_window = [j for _, t, j in rows if begin <= t < end]
    assert set(in_window) <= ran
    if not kills:  # a killed run is run again (at least once); otherwise exactly once
        runs = [j for j, *_ in h.rows("done") if j in set(in_window)]
        assert len(runs) == len(in_window)
    backend = "sqlite" if h.url.startswith("sqlite") else "postgres"
    line = figure(
        "schedule_race", backend, seconds=seconds, kills=2 if kills else 0,
        fires=len(window), jobs=len(in_window),
    )  # fmt: skip
    print(line)


@pytest.mark.slow
def test_two_supervisors_make_one_job_per_fire(racers: Harness) -> None:
    _race(racers, seconds=10, kills=False)


@pytest.mark.slow
def test_one_job_per_fire_while_supervisors_are_killed(racers: Harness) -> None:
    _race(racers, seconds=12, kills=True)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sixty_seconds_of_racing_make_sixty_jobs(racers: Harness) -> None:
    _race(racers, seconds=60, kills=False)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sixty_seconds_with_kills_make_sixty_jobs(racers: Harness) -> None:
    _race(racers, seconds=60, kills=True)
