"""The scheduler benchmark keeps working: a tiny run, end to end (no speed asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.fixtures.processes import ROOT


@pytest.mark.timeout(300)
def test_quick_benchmark_prints_its_figures_and_command() -> None:
    command = [sys.executable, "-m", "bench.schedules", "--seconds", "2", "--schedules", "200"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert proc.returncode in (0, 1), proc.stderr  # 1: the target was missed on this machine
    out = proc.stdout
    lines = out.splitlines()
    assert lines[0] == "scheduler overhead at idle, store=sqlite, 2 s measured each"
    assert lines[1].split() == [
        "schedules",
        "cpu",
        "%",
        "cpu",
        "s",
        "start",
        "s",
        "rss",
        "MiB",
        "fired",
    ]
    assert lines[2].split()[0] == "0" and lines[3].split()[0] == "200"
    assert "of one CPU (target < 1 %)" in out
    assert "reproduce: python -m bench.schedules --seconds 2 --schedules 200" in out
