"""Run mypy on check_types.py: the types of ``after_response`` are part of the API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_after_response_types_check_with_mypy() -> None:
    target = Path(__file__).with_name("check_types.py")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir=/dev/null",
         "--warn-unused-ignores", str(target)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
