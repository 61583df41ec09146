"""Fixtures of the fault suite, and the summary that prints every scenario's figures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import FIGURES, FaultHarness


@pytest.fixture
def faults(tmp_path: Path, store_url: str) -> Iterator[FaultHarness]:
    """A harness on each backend (SQLite, PostgreSQL)."""
    h = FaultHarness(tmp_path, store_url)
    yield h
    h.close()


@pytest.fixture
def sqlite_faults(tmp_path: Path, sqlite_url: str) -> Iterator[FaultHarness]:
    h = FaultHarness(tmp_path, sqlite_url)
    yield h
    h.close()


@pytest.fixture
def pg_faults(tmp_path: Path, postgres_url: str) -> Iterator[FaultHarness]:
    h = FaultHarness(tmp_path, postgres_url)
    yield h
    h.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figure lines whether or not output capture is on (``-s`` not needed)."""
    if not FIGURES:
        return
    terminalreporter.section("fault-tolerance figures")
    for line in FIGURES:
        terminalreporter.write_line(line)
