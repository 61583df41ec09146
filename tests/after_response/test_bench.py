"""The after-response benchmark keeps working: a tiny run, end to end (no speed asserted)."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.processes import ROOT


def test_quick_benchmark_prints_its_figures_and_command() -> None:
    command = [sys.executable, "-m", "bench.after_response", "--requests", "20", "--kinds", "io"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr  # 1: the target was missed on this machine
    out = proc.stdout
    for expected in ("io    plain", "io    with-task", "io    added: p99", "reproduce: "):
        assert expected in out, out
    assert "--requests 20 --kinds io" in out
