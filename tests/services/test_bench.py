"""The services benchmark keeps working: a tiny run, end to end (no speed asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.fixtures.processes import ROOT


@pytest.mark.timeout(150)
def test_quick_benchmark_prints_its_figures_and_command() -> None:
    command = [sys.executable, "-m", "bench.services", "--calls", "50", "--sends", "200"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=140)
    assert proc.returncode in (0, 1), proc.stderr  # 1: the target was missed on this machine
    out = proc.stdout
    for expected in ("transport", "unix ", "tcp ", "target: unix p50 < 0.3 ms", "reproduce: "):
        assert expected in out, out
    assert "--calls 50 --sends 200" in out
