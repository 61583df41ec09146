"""Fixtures of the web tests: the test app pointed at this test's store, and a real
``offload web`` server on it; and (``live``) a store where a real worker fires schedules
and hosts a service, with a server on it."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from offload import Offload
from tests.fixtures import processes
from tests.fixtures.postgres import store_settings
from tests.web import apps, pages_apps
from tests.web.servers import SECRET, WebServer, web_env


def point_app(url: str) -> Offload:
    """``tests.web.apps.app``, in this process, on the store at ``url``."""
    apps.app.close()
    apps.app.settings = store_settings(url, secret=SECRET)
    apps.app.migrate()
    return apps.app


@pytest.fixture
def web_app(store_url: str) -> Iterator[Offload]:
    """The test app on a fresh store, on SQLite and on PostgreSQL."""
    yield point_app(store_url)
    apps.app.close()


@pytest.fixture
def sqlite_web_app(sqlite_url: str) -> Iterator[Offload]:
    yield point_app(sqlite_url)
    apps.app.close()


@pytest.fixture
def server(web_app: Offload, tmp_path: Path) -> Iterator[WebServer]:
    s = WebServer(web_app.settings.url, tmp_path)
    yield s
    s.stop()


@pytest.fixture
def sqlite_server(sqlite_web_app: Offload, tmp_path: Path) -> Iterator[WebServer]:
    s = WebServer(sqlite_web_app.settings.url, tmp_path)
    yield s
    s.stop()


@dataclass
class Live:
    """``tests.web.pages_apps:app`` on a fresh store (``app``, in this process, can call
    its services), a worker firing its schedules and hosting ``web-echo``, and an
    ``offload web`` server on the same store."""

    app: Offload
    worker: processes.WorkerProcess
    server: WebServer

    def stop_worker(self) -> None:
        """Stop the worker as an operator does (SIGTERM), and wait for it to exit."""
        stop(self.worker)


def stop(worker: processes.WorkerProcess) -> None:
    if worker.popen.poll() is None:
        worker.signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except Exception:
            worker.kill()


@pytest.fixture
def live(store_url: str, tmp_path: Path) -> Iterator[Live]:
    # A short private folder for the service's Unix socket (tmp_path can be too long).
    sockets = tempfile.mkdtemp(prefix="ofw-", dir="/tmp")
    os.rmdir(sockets)  # the service makes it, owner-only
    app = pages_apps.app
    app.close()
    app.settings = store_settings(store_url, secret=SECRET, service_socket_dir=sockets)
    app.migrate()
    worker = processes.start(
        "worker", store_url, tmp_path / "ledger.db", tmp_path / "worker.log",
        app="tests.web.pages_apps:app", service_socket_dir=sockets, secret=SECRET,
        args=["--queues", "ticks", "--concurrency", "1", "--services", "web-echo"],
    )  # fmt: skip
    server = None
    try:
        env = web_env(store_url, tmp_path, service_socket_dir=sockets)
        server = WebServer(store_url, tmp_path, app="tests.web.pages_apps:app", env=env)
        yield Live(app, worker, server)
    finally:
        if server is not None:
            server.stop()
        stop(worker)
        app.services.close()
        app.close()
        shutil.rmtree(sockets, ignore_errors=True)
