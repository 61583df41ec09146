"""The ``harness`` fixture: a store, a ledger and worker processes for one test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offload.types import ProcessInfo
from tests.fixtures import processes
from tests.worker import apps


class Harness:
    """Everything a worker test needs; processes it starts are killed at the end."""

    def __init__(self, tmp_path: Path, url: str | None = None) -> None:
        self.tmp = tmp_path
        self.url = url or f"sqlite:///{tmp_path / 'jobs.db'}"
        self.ledger = tmp_path / "ledger.db"
        self.procs: list[processes.WorkerProcess] = []
        self.app = apps.app
        for app in (apps.app, apps.small_app):
            app.settings = app.settings.replace(url=self.url, lease=5.0, heartbeat=1.0)
            app.close()

    def task(self, name: str) -> Any:
        return self.app.tasks[f"tests.worker.apps.{name}"]

    def gate(self, name: str = "gate") -> Path:
        """A file path a ``gated`` job waits for; ``touch()`` it to release the job."""
        return self.tmp / name

    def start(
        self, command: str = "worker", *args: str, **settings: Any
    ) -> processes.WorkerProcess:
        app = settings.pop("app", "tests.worker.apps:app")
        log = self.tmp / f"{command}-{len(self.procs)}.log"
        proc = processes.start(command, self.url, self.ledger, log, app=app, args=args, **settings)
        self.procs.append(proc)
        return proc

    def run(self, command: str, *args: str, **settings: Any) -> Any:
        app = settings.pop("app", "tests.worker.apps:app")
        return processes.run(command, self.url, self.ledger, app=app, args=args, **settings)

    def rows(self, phase: str | None = None) -> list[tuple[str, int, int, str]]:
        return processes.ledger_rows(self.ledger, phase)

    def runs_of(self, job_id: str, phase: str = "done") -> int:
        return sum(1 for row in self.rows(phase) if row[0] == job_id)

    def processes(self, status: str = "running") -> list[ProcessInfo]:
        return [p for p in self.app.store.process_list(gone_after=3.0) if p.status == status]

    def child_running(self, job_id: str) -> ProcessInfo | None:
        """The process-table row of the child that runs ``job_id`` (once it heartbeated)."""
        for row in self.processes():
            if row.kind == "child" and row.current_job == job_id:
                return row
        return None

    def signal_pid(self, pid: int, signum: int) -> None:
        os.kill(pid, signum)

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
        for app in (apps.app, apps.small_app):
            app.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


@pytest.fixture
def pg_harness(tmp_path: Path, postgres_url: str) -> Iterator[Harness]:
    """The same, on a fresh PostgreSQL database."""
    h = Harness(tmp_path, postgres_url)
    yield h
    h.close()
