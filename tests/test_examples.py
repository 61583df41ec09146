"""The README's demo runs end to end and reports every job done."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_every_job_and_prints_the_process_table(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path), "COLUMNS": "160"}
    env.pop("OFFLOAD_URL", None)
    out = subprocess.run(
        [sys.executable, "examples/demo.py"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "205 jobs succeeded, 0 failed" in out.stdout
    assert "supervisor" in out.stdout and "child" in out.stdout
    assert "sent 'Your import is running' to user0@example.com" in out.stdout


def test_feed_refresh_example_keeps_its_promises(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("OFFLOAD_URL", None)
    out = subprocess.run(
        [sys.executable, "examples/feed_refresh.py"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "30 visitors asked for a refresh of 'news': 1 job stored" in out.stdout
    assert "at most 2 at once (limit 2)" in out.stdout
    assert "reindexes run: 1, with version [5]" in out.stdout


def test_bulk_import_runs_both_stages_and_each_callback_once(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("OFFLOAD_URL", None)
    out = subprocess.run(
        [sys.executable, "examples/bulk_import.py", "3000"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    # 3000 lines: one split job, then halves down to 375 lines: 1 + 1 + 2 + 4 + 8 jobs.
    assert out.stdout.count("import group ") == 1
    assert "16 jobs succeeded, 0 failed" in out.stdout
    assert out.stdout.count("post-processing group ") == 1
    assert "post-processing: 3000 records (3000 distinct)" in out.stdout
