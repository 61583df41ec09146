"""Real service hosts for the tests: ``offload worker`` or ``offload service`` in a
subprocess, on the test's store, with Unix sockets in a short private folder."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from offload import Offload
from offload.store.rules import GONE_AFTER_BEATS
from offload.types import ProcessInfo
from offload.views import service_of
from tests.fixtures.processes import WorkerProcess, worker_env
from tests.services.apps import register_all

SECRET = "s3cret-for-service-tests"


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """``condition()``'s first truthy value, polled until ``timeout``; fails the test
    after that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(0.02)


class Host:
    """A service host process and a client app on the same store and settings."""

    def __init__(self, url: str, tmp: Path, socket_dir: str, **settings: Any) -> None:
        self.url = url
        self.tmp = tmp
        self.ledger = tmp / "ledger"
        self.settings = {"service_socket_dir": socket_dir, **settings}
        self.app = register_all(Offload(url, lease=5.0, heartbeat=1.0, **self.settings))
        self.processes: list[WorkerProcess] = []

    def start(self, *args: str, command: str = "worker") -> WorkerProcess:
        env = worker_env(self.url, self.ledger, **self.settings)
        log = self.tmp / f"{command}-{len(self.processes)}.log"
        cmd = [command, "--app", "tests.services.apps:app", *args]
        if command == "worker":
            cmd += ["--concurrency", "1"]
        process = WorkerProcess(cmd, env, log)
        self.processes.append(process)
        return process

    def rows(self, name: str | None = None) -> list[ProcessInfo]:
        """Running service rows (of ``name``)."""
        gone_after = GONE_AFTER_BEATS * self.app.settings.heartbeat
        rows = self.app.store.process_list(gone_after=gone_after)
        return [
            p
            for p in rows
            if p.kind == "service" and p.status == "running"
            and (name is None or (service_of(p) or ("",))[0] == name)
        ]  # fmt: skip

    def wait_ready(self, names: Sequence[str], timeout: float = 30.0) -> dict[str, ProcessInfo]:
        """The running row of each of ``names`` once all are registered."""

        def found() -> dict[str, ProcessInfo] | None:
            rows = {service_of(p)[0]: p for p in self.rows()}  # type: ignore[index]
            return rows if all(n in rows for n in names) else None

        return wait_for(found, timeout, f"services {names} to register")  # type: ignore[no-any-return]

    def ledger_lines(self) -> list[str]:
        path = Path(str(self.ledger) + ".services")
        return path.read_text().splitlines() if path.exists() else []

    def logs(self) -> str:
        return "\n".join(p.log() for p in self.processes)

    def close(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None:
                process.signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except Exception:
                    process.kill()
            else:
                process.wait()
        self.app.services.close()
        self.app.close()


@pytest.fixture
def socket_dir() -> Iterator[str]:
    """A short private folder for Unix sockets (pytest's tmp_path can pass 107 bytes)."""
    folder = tempfile.mkdtemp(prefix="ofs-", dir="/tmp")
    os.rmdir(folder)  # the service makes it, owner-only
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def host(sqlite_url: str, tmp_path: Path, socket_dir: str) -> Iterator[Host]:
    """A host on SQLite (its processes are started by the test)."""
    h = Host(sqlite_url, tmp_path, socket_dir)
    h.app.migrate()
    yield h
    h.close()


@pytest.fixture
def any_host(store_url: str, tmp_path: Path, socket_dir: str) -> Iterator[Host]:
    """A host on each backend."""
    h = Host(store_url, tmp_path, socket_dir)
    h.app.migrate()
    yield h
    h.close()
