"""Tasks of ``examples/feed_refresh.py``: a feed refreshed at most once an hour however
many visitors ask, a partner API called at most two at a time, and a search index
rebuilt once after a burst of edits. The store is ``OFFLOAD_URL``."""

from __future__ import annotations

import json
import os
import time

from offload import Offload

app = Offload()


def _note(event: str, **fields: object) -> None:
    """Append one line to the file ``FEED_LOG`` names (what the example reports from)."""
    with open(os.environ["FEED_LOG"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"event": event, "at": time.time(), **fields}) + "\n")


@app.task(unique_key=lambda feed: f"refresh:{feed}", unique_for=3600)
def refresh_feed(feed: str) -> int:
    """Fetch a feed (a pretend fetch): one job per feed per hour, whoever asks."""
    _note("refresh", feed=feed)
    time.sleep(0.2)
    return 42


@app.task(limit=("api:partner", 2), retries=5)
def sync_account(account: int) -> None:
    """Call a rate-limited partner API: never more than two calls at once, anywhere."""
    _note("api-start", account=account)
    time.sleep(0.3)
    _note("api-end", account=account)


@app.task(unique_key=lambda doc, version: f"reindex:{doc}", debounce=1.0)
def reindex(doc: int, version: int) -> None:
    """Rebuild a document's search entry: once, a second after the last edit of a burst,
    with the last edit's version."""
    _note("reindex", doc=doc, version=version)
