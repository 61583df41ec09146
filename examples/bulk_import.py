"""offload example: a bulk import in two stages, on embedded SQLite.

    python examples/bulk_import.py [LINES]

Stage 1 imports a file of LINES lines (20,000 by default): one ``split`` job adds one
job for the whole file, which splits itself into chunks that add chunks, imported in
parallel by a worker pool. Stage 2 post-processes the result; it starts when stage 1 is
complete (every chunk, added ones too, is final) and holds no worker slot while it
waits. A failed chunk stops it (``stop_on_failure=True``).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(lines: int = 20_000) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="offload-bulk-import-"))
    env = {**os.environ, "OFFLOAD_URL": f"sqlite:///{workdir / 'offload.db'}"}
    env["BULK_IMPORT_DB"] = str(workdir / "imported.db")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    from examples.bulk_import_app import app, finished, imported, post_process, split

    source = workdir / "records.csv"
    source.write_text("".join(f"{n},record-{n}\n" for n in range(lines)), encoding="utf-8")

    # Stage 1: the import. Sealed when the block ends; the chunks its members add keep
    # it open until they are done.
    with app.group(name="import", then=imported, stop_on_failure=True) as stage1:
        stage1.add(split, str(source))
    # Stage 2: stored now, run when stage 1 is complete.
    with app.group(name="post-process", then=finished, after=stage1) as stage2:
        post = stage2.add(post_process)
    print(f"stage 1 {stage1.id} ({stage1.state}), stage 2 {stage2.id} ({stage2.state})")

    worker = subprocess.Popen(
        [sys.executable, "-m", "offload", "worker", "--app", "examples.bulk_import_app:app",
         "--concurrency", "2", "--queues", "imports", "--log-file", str(workdir / "worker.log")],
        env=env, cwd=ROOT,
    )  # fmt: skip
    started = time.monotonic()
    try:
        while not stage2.refresh().complete:
            done, total = stage1.refresh().progress
            print(f"  import: {done}/{total} jobs done", flush=True)
            time.sleep(0.5)
        stage2.wait(timeout=300)
        callback = app.get_job(stage2.callback_id or "")
        callback.wait(timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    elapsed = time.monotonic() - started
    stage1.refresh()
    summary = post.refresh().result()
    with sqlite3.connect(workdir / "imported.db") as conn:
        stored = json.loads(conn.execute("SELECT body FROM summary").fetchone()[0])
    print(
        f"import: {stage1.succeeded} jobs succeeded, {stage1.failed} failed; "
        f"post-processing: {summary['records']} records ({summary['distinct']} distinct) "
        f"in {elapsed:.2f} s"
    )
    ok = stage1.failed == 0 and summary == stored and summary["records"] == lines
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
