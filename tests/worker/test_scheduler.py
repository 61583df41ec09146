"""The scheduler component in this process, on a real SQLite file, without forking: its
moments move into the future once acted on (an idle supervisor never spins), it backs off
while the store is away, and a stopping worker fires nothing."""

from __future__ import annotations

import time
from pathlib import Path

from offload import Offload
from offload.testing import wait_for
from offload.worker.config import WorkerConfig
from offload.worker.scheduler import CLOCK_EVERY, Scheduler
from offload.worker.supervisor import Supervisor


def scheduler_of(app: Offload) -> tuple[Supervisor, Scheduler]:
    supervisor = Supervisor(app, WorkerConfig(queues=("default",), concurrency=1))
    (scheduler,) = [c for c in supervisor._components if isinstance(c, Scheduler)]
    return supervisor, scheduler


def daily_app(url: str, n: int = 50) -> Offload:
    app = Offload(url)
    task = app.task(name="report")(lambda k: k)
    for k in range(n):
        app.periodic(f"{k % 60} {k % 24} * * *", args=(k,), name=f"daily-{k}")(task)
    return app


def test_an_idle_scheduler_asks_for_no_turn_before_its_next_moment(tmp_path: Path) -> None:
    app = daily_app(f"sqlite:///{tmp_path / 'jobs.db'}")
    supervisor, scheduler = scheduler_of(app)
    try:
        assert scheduler.next_at() == 0.0  # not loaded yet: at once
        now = time.monotonic()
        scheduler.tick(now, [])
        for _ in range(3):  # ticked again and again, it stays put: no spin
            at = scheduler.next_at()
            assert at is not None and at > time.monotonic() + 1
            assert at <= now + CLOCK_EVERY + 1
            scheduler.tick(time.monotonic(), [])
        assert app.store.schedule_last_fires() == {}  # new schedules: nothing caught up
    finally:
        supervisor._stops.close()
        app.close()


def test_a_due_fire_is_recorded_and_the_next_one_awaited(tmp_path: Path) -> None:
    app = Offload(f"sqlite:///{tmp_path / 'jobs.db'}")
    app.periodic(every=1, name="tick")(app.task(name="tick")(lambda: None))
    supervisor, scheduler = scheduler_of(app)
    try:

        def turn() -> bool:
            scheduler.tick(time.monotonic(), [])
            return "tick" in app.store.schedule_last_fires()

        wait_for(turn, timeout=30, interval=0.05, what="the first fire")
        at = scheduler.next_at()
        assert at is not None and time.monotonic() < at <= time.monotonic() + 1.01
    finally:
        supervisor._stops.close()
        app.close()


def test_the_scheduler_backs_off_while_the_store_is_away(tmp_path: Path) -> None:
    app = daily_app(f"sqlite:///{tmp_path / 'missing' / 'jobs.db'}", n=2)
    supervisor, scheduler = scheduler_of(app)
    try:
        scheduler.tick(time.monotonic(), [])  # the folder does not exist: the store fails
        at = scheduler.next_at()
        assert at is not None and at > time.monotonic()
        assert at == supervisor._claimer._guard.retry_at
    finally:
        supervisor._stops.close()


def test_a_stopping_worker_fires_nothing(tmp_path: Path) -> None:
    app = daily_app(f"sqlite:///{tmp_path / 'jobs.db'}", n=2)
    supervisor, scheduler = scheduler_of(app)
    try:
        scheduler.stop(fast=False)
        assert scheduler.next_at() is None
        scheduler.tick(time.monotonic(), [])
        assert app.store.schedule_last_fires() == {}
    finally:
        supervisor._stops.close()
        app.close()


def test_without_schedules_it_never_asks_for_a_turn(tmp_path: Path) -> None:
    app = Offload(f"sqlite:///{tmp_path / 'jobs.db'}")
    supervisor, scheduler = scheduler_of(app)
    assert scheduler.next_at() is None
    supervisor._stops.close()
