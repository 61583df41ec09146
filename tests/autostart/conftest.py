"""The ``host`` fixture: a store, a ledger, and every process an autostart test starts,
including the detached drains and pools autostart, ``ensure`` and the listener start
(found by their pid files and start locks), all killed when the test ends."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from offload import Offload
from offload.autostart import locks
from offload.testing import wait_for
from tests.fixtures import processes

APP = "tests.autostart.apps:app"


class Host:
    """One machine's view of a store: the processes of a test, and its lock folder."""

    def __init__(self, tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp_path
        self.url = url
        self.ledger = tmp_path / "ledger.db"
        self.log = tmp_path / "autostart.log"
        self.app = Offload(url, lease=5.0, heartbeat=1.0)
        self.app.migrate()
        self.folder = locks.lock_dir(self.app.settings)
        self.procs: list[processes.WorkerProcess] = []
        self.popens: list[subprocess.Popen[str]] = []
        self._apps: list[Offload] = [self.app]
        # What a drain started from this process inherits: the tasks write this ledger.
        monkeypatch.setenv("OFFLOAD_TEST_LEDGER", str(self.ledger))

    # -- configuration -------------------------------------------------------------------
    def settings(self, **extra: Any) -> dict[str, Any]:
        """``OFFLOAD_*`` settings of the processes of this test."""
        return {"autostart_log": self.log, "autostart_idle": 30, **extra}

    def env(self, **extra: Any) -> dict[str, str]:
        env = processes.worker_env(self.url, self.ledger, **self.settings(**extra))
        env["OFFLOAD_APP"] = APP
        return env

    def enqueuing_app(self, **overrides: Any) -> Offload:
        """An app in this process, as a web process has it (closed with the test)."""
        options = {
            "autostart_app": APP, "autostart_log": str(self.log), "autostart_idle": 30.0,
            "lease": 5.0, "heartbeat": 1.0, **overrides,
        }  # fmt: skip
        app = Offload(self.url, **options)  # knows no task: enqueue with enqueue_by_name
        self._apps.append(app)
        return app

    # -- processes ----------------------------------------------------------------------
    def start(self, command: str, *args: str, **settings: Any) -> processes.WorkerProcess:
        """``offload <command> --app <the test app> <args>`` in the background."""
        log = self.tmp / f"{command}-{len(self.procs)}.log"
        proc = processes.start(
            command, self.url, self.ledger, log, app=APP, args=args, **self.settings(**settings)
        )
        self.procs.append(proc)
        return proc

    def popen(self, argv: Sequence[str], **settings: Any) -> subprocess.Popen[str]:
        """``python <argv>`` with this test's environment; output captured."""
        proc = subprocess.Popen(
            [sys.executable, *argv], cwd=processes.ROOT, env=self.env(**settings),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.popens.append(proc)
        return proc

    def offload(self, *args: str, **settings: Any) -> subprocess.Popen[str]:
        return self.popen(["-m", "offload", *args], **settings)

    # -- what runs ----------------------------------------------------------------------
    def serving(self, queue: str = "default") -> bool:
        return locks.probe(locks.serve_lock(self.folder, queue))

    def pool_alive(self, queues: Sequence[str] = ("default", "mail")) -> bool:
        return locks.probe(locks.pool_lock(self.folder, queues))

    def live(self, kind: str | None = None) -> dict[int, tuple[str, tuple[str, ...]]]:
        """Serving processes of this store by their pid files, alive and ours."""
        return {
            pid: info
            for pid, info in locks.pid_files(self.folder).items()
            if (kind is None or info[0] == kind) and self._ours(pid)
        }

    def _ours(self, pid: int) -> bool:
        try:
            proc = psutil.Process(pid)
            return (
                proc.status() != psutil.STATUS_ZOMBIE
                and proc.environ().get("OFFLOAD_URL") == self.url
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def events(self, event: str, **fields: str) -> list[str]:
        """Lines of the autostart log with this event (and these ``key=value`` fields)."""
        wanted = [f"event={event}", *(f"{k}={v}" for k, v in fields.items())]
        return [
            line for line in self.log_text().splitlines() if all(w in line.split() for w in wanted)
        ]

    def runs(self, phase: str = "done") -> list[tuple[str, int, int, str]]:
        return processes.ledger_rows(self.ledger, phase)

    # -- the end ------------------------------------------------------------------------
    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
        for popen in self.popens:
            if popen.poll() is None:
                popen.kill()
            popen.communicate(timeout=30)
        # A drain or pool being started holds its start lock until it has left its pid
        # file: wait for those, then kill every serving process of this store, children too.
        for name in os.listdir(self.folder):
            if name.startswith(("spawn.", "ensure.")):
                path = os.path.join(self.folder, name)
                with contextlib.suppress(Exception):
                    wait_for(lambda p=path: not locks.probe(p), timeout=30, what=f"{path} free")
        live = list(self.live())
        for pid in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # each started one leads its own session
        for pid in live:
            wait_for(lambda p=pid: processes.process_gone(p), timeout=30, what=f"pid {pid} gone")
        for app in self._apps:
            app.close()
        if self.app.settings.scheme == "postgresql":
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def host(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    """On each backend (SQLite, PostgreSQL)."""
    h = Host(tmp_path, store_url, monkeypatch)
    yield h
    h.close()


@pytest.fixture
def sqlite_host(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    h = Host(tmp_path, sqlite_url, monkeypatch)
    yield h
    h.close()
