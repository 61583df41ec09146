"""The service examples run end to end, each starting and stopping its own worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.processes import ROOT


def run_example(module: str, tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env["TMPDIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", module], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (ROOT / "offload.db").exists()  # the examples use their own store
    return out.stdout


@pytest.mark.timeout(150)
def test_cache_example_expires_entries_in_its_loop(tmp_path: Path) -> None:
    out = run_example("examples.cache_service", tmp_path)
    assert "greeting: hello" in out and "flash: gone soon" in out
    assert "flash after its TTL: None" in out and "'swept': 1" in out


@pytest.mark.timeout(150)
def test_mail_example_batches_every_mail(tmp_path: Path) -> None:
    out = run_example("examples.mail_service", tmp_path)
    assert "sent: 120 mails in" in out


@pytest.mark.timeout(150)
def test_feed_example_fetches_once_for_a_crowd(tmp_path: Path) -> None:
    out = run_example("examples.feed_cache", tmp_path)
    assert "feed: ['story 1'" in out
    assert "fetched 1 time(s)" in out
