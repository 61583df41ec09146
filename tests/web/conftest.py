"""Fixtures of the web tests: the test app pointed at this test's store, and a real
``offload web`` server on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from offload import Offload
from tests.fixtures.postgres import store_settings
from tests.web import apps
from tests.web.servers import SECRET, WebServer


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
