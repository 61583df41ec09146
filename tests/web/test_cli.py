"""``offload web`` as a user runs it: refusals happen before anything listens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from offload import Offload
from tests.after_response.servers import free_port
from tests.fixtures.processes import ROOT
from tests.web.servers import APP, web_env


def run_web(url: str, tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "offload", "web", "--app", APP, *args],
        cwd=ROOT, env={**web_env(url, tmp), **env}, capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "192.0.2.10", "example.com"])
def test_a_bind_beyond_loopback_without_credentials_refuses_to_start(
    sqlite_web_app: Offload, tmp_path: Path, bind: str
) -> None:
    shown = f"[{bind}]" if ":" in bind else bind
    out = run_web(sqlite_web_app.settings.url, tmp_path, "--bind", f"{shown}:{free_port()}")
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"refusing to serve on {bind}, beyond loopback, without credentials" in out.stderr
    assert "OFFLOAD_WEB_PASSWORD" in out.stderr and "--password-file" in out.stderr


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.1:", ":8787", "127.0.0.1:99999", "a b:1"])
def test_a_malformed_bind_is_a_usage_error(
    sqlite_web_app: Offload, tmp_path: Path, bind: str
) -> None:
    out = run_web(sqlite_web_app.settings.url, tmp_path, "--bind", bind)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--bind" in out.stderr


def test_an_empty_password_file_is_a_usage_error(sqlite_web_app: Offload, tmp_path: Path) -> None:
    empty = tmp_path / "password"
    empty.write_text("\n")
    out = run_web(
        sqlite_web_app.settings.url, tmp_path, "--bind", "0.0.0.0:1", "--password-file", str(empty)
    )
    assert out.returncode == 2
    assert "is empty" in out.stderr


def test_allowed_hosts_beyond_loopback_need_credentials_for_metrics(
    sqlite_web_app: Offload, tmp_path: Path
) -> None:
    port = free_port()
    out = run_web(
        sqlite_web_app.settings.url, tmp_path, "--bind", f"127.0.0.1:{port}",
        "--allowed-host", "jobs.example.com",
    )  # fmt: skip
    assert out.returncode == 2
    assert "allowed_hosts reach beyond loopback (jobs.example.com)" in out.stderr
