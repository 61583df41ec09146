"""Unique, limited and debounced jobs, on embedded SQLite, with a real worker.

    python examples/feed_refresh.py

Thirty visitors ask for the same feed refresh: one job runs. Twelve accounts are synced
through a partner API limited to two calls at once: a worker with four children never
runs more than two. Five edits of one document arrive in a burst: the index is rebuilt
once, with the last edit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="offload-feed-"))
    log = workdir / "events.jsonl"
    env = {**os.environ, "OFFLOAD_URL": f"sqlite:///{workdir / 'offload.db'}"}
    env["FEED_LOG"] = str(log)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    from examples.feed_app import app, refresh_feed, reindex, sync_account

    asks = [refresh_feed.enqueue("news") for _ in range(30)]
    stored = {job.id for job in asks}
    print(
        f"30 visitors asked for a refresh of 'news': {len(stored)} job stored, "
        f"{sum(job.deduplicated for job in asks)} enqueues deduplicated"
    )
    syncs = sync_account.enqueue_many([(n,) for n in range(12)])
    edits = [reindex.enqueue(7, version) for version in range(1, 6)]
    print(f"5 edits of document 7: {len({job.id for job in edits})} reindex job waiting")

    worker = subprocess.Popen(
        [sys.executable, "-m", "offload", "worker", "--app", "examples.feed_app:app",
         "--concurrency", "4", "--log-file", str(workdir / "worker.log")],
        env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        for job in [asks[0], *syncs, edits[0]]:
            job.wait(timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)

    events = [json.loads(line) for line in log.read_text().splitlines()]
    refreshes = [e for e in events if e["event"] == "refresh"]
    reindexes = [e for e in events if e["event"] == "reindex"]
    peak = running = 0
    for e in sorted(events, key=lambda e: e["at"]):
        if e["event"] in ("api-start", "api-end"):
            running += 1 if e["event"] == "api-start" else -1
            peak = max(peak, running)
    again = refresh_feed.enqueue("news")
    print(
        f"feed refreshes run: {len(refreshes)}; asked again after it ran: "
        f"{'deduplicated' if again.deduplicated else 'stored'} (the hour is not over)"
    )
    print(
        f"partner API calls: {sum(e['event'] == 'api-start' for e in events)}, "
        f"at most {peak} at once (limit 2)"
    )
    print(f"reindexes run: {len(reindexes)}, with version {[e['version'] for e in reindexes]}")
    app.close()
    ok = len(refreshes) == 1 and again.deduplicated and peak == 2 and len(reindexes) == 1
    ok = ok and reindexes[0]["version"] == 5
    print("all as promised" if ok else "NOT as promised")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
