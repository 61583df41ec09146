"""The disk-full scenario, run inside a private mount namespace on a small tmpfs.

``test_disk_full.py`` starts it as
``unshare -m --propagation private sh -c 'mount -t tmpfs -o size=8m tmpfs DIR && exec
python -m tests.faults.disk_full_scenario DIR WORKDIR'``: the tmpfs (and the store file on
it) exists only for this process and the worker it starts. The ledger and the report stay
in WORKDIR, outside the tmpfs. Prints nothing; writes ``WORKDIR/report.json``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from offload.errors import StoreFull
from offload.testing import wait_for
from tests.faults.harness import FaultHarness

RESERVE = 2 * 1024 * 1024
FILLER = 2 * 1024 * 1024
ARG = "x" * 4000


def main(disk: Path, workdir: Path) -> dict[str, Any]:
    filler = disk / "filler"
    filler.write_bytes(b"\0" * FILLER)
    h = FaultHarness(workdir, f"sqlite:///{disk / 'jobs.db'}")
    report: dict[str, Any] = {}
    try:
        h.app.settings = h.app.settings.replace(min_free_bytes=RESERVE)
        h.app.close()
        work = h.task("work")
        accepted: list[str] = []
        refusal = ""
        for i in range(100_000):
            try:
                accepted.append(work.enqueue(ARG, i).id)
            except StoreFull as exc:
                refusal = str(exc)
                break
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        report.update(accepted=len(accepted), refusal=refusal, free_at_refusal=free)

        # Jobs already accepted run, and their outcomes land in the reserve.
        worker = h.start("--concurrency", "2", min_free_bytes=RESERVE)
        start = time.monotonic()
        wait_for(lambda: h.done_count(accepted) == len(accepted), timeout=60, what="all done")
        report["drain_s"] = time.monotonic() - start
        report["worker_alive"] = worker.popen.poll() is None
        # Errors the full disk caused (the store's path, in worker.started, says "full" too).
        report["disk_errors_in_log"] = sum(
            1
            for line in worker.log().splitlines()
            if "StoreFull" in line or "disk is full" in line or "level=error" in line
        )

        # Still refused while the disk is as full; accepted again once space is freed,
        # by the same process, without a restart.
        try:
            work.enqueue(ARG, -1)
            report["refused_again"] = False
        except StoreFull:
            report["refused_again"] = True
        filler.unlink()
        freed_at = time.monotonic()
        after = work.enqueue("after-free", 0)
        wait_for(lambda: h.done_count([after.id]) == 1, timeout=20, what="job after freeing")
        report["recovery_s"] = time.monotonic() - freed_at
        accepted.append(after.id)
        worker.signal(signal.SIGTERM)
        report["worker_exit"] = worker.wait(timeout=20)

        verdict = h.verify(accepted)
        report.update(
            jobs=len(accepted), lost=len(verdict.lost), duplicates=len(verdict.duplicates),
            phantoms=len(verdict.phantoms), integrity=verdict.integrity,
            bad_duplicates=len(verdict.bad_duplicates),
        )  # fmt: skip
    finally:
        h.close()
    return report


if __name__ == "__main__":
    disk, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    result = main(disk, workdir)
    (workdir / "report.json").write_text(json.dumps(result))
