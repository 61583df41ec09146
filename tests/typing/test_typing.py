"""Run mypy on check_api.py: decorator and handle types are part of the public API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_public_api_types_check_with_mypy():
    target = Path(__file__).with_name("check_api.py")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir=/dev/null",
         str(target)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
