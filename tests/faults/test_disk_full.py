"""Disk full under the SQLite file: new jobs are refused before SQLite itself fails, so
the jobs already accepted still complete and their outcomes are recorded."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.harness import figure
from tests.fixtures.processes import ROOT, worker_env


@pytest.mark.timeout(180)
def test_disk_full_refuses_enqueue_and_keeps_room_for_outcomes(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    python = shlex.quote(sys.executable)
    script = (
        f"mount -t tmpfs -o size=8m tmpfs {shlex.quote(str(disk))} && exec {python}"
        f" -m tests.faults.disk_full_scenario {shlex.quote(str(disk))}"
        f" {shlex.quote(str(tmp_path))}"
    )
    env = worker_env(f"sqlite:///{disk / 'jobs.db'}", tmp_path / "ledger.db")
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())

    # Enqueue was refused by the reserve check, naming the path and the free bytes, while
    # SQLite itself still had room.
    refusal = report["refusal"]
    assert refusal, "no enqueue was refused on an 8 MB disk"
    assert str(disk / "jobs.db") in refusal
    assert "bytes free" in refusal and "reserve" in refusal, refusal
    assert report["accepted"] > 0
    # Every accepted job completed, with its outcome recorded; the worker never hit a
    # full disk.
    assert report["worker_alive"]
    assert report["disk_errors_in_log"] == 0
    assert report["refused_again"]
    assert report["worker_exit"] == 0
    assert report["lost"] == 0 and report["phantoms"] == 0 and report["bad_duplicates"] == 0
    assert report["integrity"] == []
    print(
        figure(
            "disk-full", "sqlite", jobs=report["jobs"], lost=report["lost"],
            duplicates=report["duplicates"], free_at_refusal=report["free_at_refusal"],
            recovery_s=report["recovery_s"],
        )
    )  # fmt: skip
