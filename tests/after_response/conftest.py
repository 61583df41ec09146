"""The ``web`` fixture: a store, a ledger, and the web servers and workers of one test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offload import Job, Offload
from tests.after_response.servers import Server
from tests.fixtures import processes

APP = "tests.after_response.apps:app"


class Web:
    """Everything an after-response test needs; processes it starts end with the test."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp = tmp_path
        self.url = url
        self.ledger = tmp_path / "ledger.db"
        self.app = Offload(url, lease=5.0, heartbeat=1.0)
        self.app.migrate()
        self.servers: list[Server] = []
        self.workers: list[processes.WorkerProcess] = []

    def serve(self, stack: str, **settings: Any) -> Server:
        log = self.tmp / f"{stack}-{len(self.servers)}.log"
        server = Server(stack, self.url, self.ledger, log, **settings)
        self.servers.append(server)
        return server

    def start(self, command: str, *args: str, **settings: Any) -> processes.WorkerProcess:
        """``offload worker|drain --app <the test app> <args>`` in the background."""
        log = self.tmp / f"{command}-{len(self.workers)}.log"
        proc = processes.start(command, self.url, self.ledger, log, app=APP, args=args, **settings)
        self.workers.append(proc)
        return proc

    def job(self, job_id: str) -> Job[Any]:
        return self.app.get_job(job_id)

    def rows(self, phase: str | None = None) -> list[tuple[str, int, int, str]]:
        return processes.ledger_rows(self.ledger, phase)

    def runs(self, job_id: str, phase: str = "done") -> list[tuple[str, int, int, str]]:
        return [row for row in self.rows(phase) if row[0] == job_id]

    def gate(self, name: str = "gate") -> Path:
        return self.tmp / name

    def close(self) -> None:
        for server in self.servers:
            server.kill()
        for proc in self.workers:
            proc.kill()
        self.app.close()


@pytest.fixture
def web(tmp_path: Path, store_url: str) -> Iterator[Web]:
    """On each backend (SQLite, PostgreSQL)."""
    w = Web(tmp_path, store_url)
    yield w
    w.close()


@pytest.fixture
def sqlite_web(tmp_path: Path, sqlite_url: str) -> Iterator[Web]:
    w = Web(tmp_path, sqlite_url)
    yield w
    w.close()


@pytest.fixture
def pg_web(tmp_path: Path, postgres_url: str) -> Iterator[Web]:
    w = Web(tmp_path, postgres_url)
    yield w
    w.close()
