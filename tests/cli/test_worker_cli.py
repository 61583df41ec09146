"""``offload worker`` and ``offload drain`` on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from offload import JobState
from offload.cli import main
from tests.fixtures.processes import ROOT, worker_env
from tests.worker import apps


def test_worker_help_lists_its_options() -> None:
    result = CliRunner().invoke(main, ["worker", "--help"])

    assert result.exit_code == 0
    for option in ("--app", "--concurrency", "--queues", "--log-file"):
        assert option in result.output


def test_drain_help_lists_its_options() -> None:
    result = CliRunner().invoke(main, ["drain", "--help"])

    assert result.exit_code == 0
    for option in ("--budget", "--max-jobs", "--queues", "--concurrency"):
        assert option in result.output


def test_invalid_queue_name_is_a_usage_error(sqlite_url: str) -> None:
    result = CliRunner().invoke(
        main, ["drain", "--app", "tests.worker.apps:app", "--url", sqlite_url, "-q", "Bad-Name"]
    )

    assert result.exit_code == 2
    assert "queue" in result.output


def test_app_that_cannot_be_imported_is_a_usage_error(sqlite_url: str) -> None:
    args = ["worker", "--app", "no_such_module:app", "--url", sqlite_url]
    result = CliRunner().invoke(main, args)

    assert result.exit_code == 2
    assert "cannot import" in result.output


def test_drain_finds_the_app_through_offload_app(tmp_path: Path, sqlite_url: str) -> None:
    app = apps.app
    app.settings = app.settings.replace(url=sqlite_url)
    app.close()
    try:
        job = app.tasks["tests.worker.apps.record"].enqueue(7)
        env = worker_env(sqlite_url, tmp_path / "ledger.db")
        env["OFFLOAD_APP"] = "tests.worker.apps:app"

        done = subprocess.run(
            [sys.executable, "-m", "offload", "drain", "--queues", "default", "-c", "1"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("drain: 1 run: 1 succeeded, 0 retried, 0 failed, 0 refused")
        assert job.refresh().state is JobState.SUCCEEDED
        assert "event=job.succeeded" in done.stderr
        # The store it used, resolved (a relative default would be a different file in
        # another folder).
        path = os.path.abspath(sqlite_url.removeprefix("sqlite:///"))
        assert "event=worker.started " in done.stderr
        assert f" store=sqlite:///{path} " in done.stderr, done.stderr
    finally:
        app.close()
