"""Refresh a feed at most once an hour however many clients ask: the feed lives in the
shared cache service; a miss enqueues one refresh job with a ``unique_key``, so a crowd
of clients asking at once starts one refresh, not one each.

    python -m examples.feed_cache       # starts a worker, then 50 clients at once

While the refresh runs, clients get ``None`` (show a placeholder, or the stale copy kept
under a second key); the job stores the new feed with a one-hour TTL.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from examples.cache_service import build
from offload import Offload

FEED_TTL = 3600.0
REFRESH = "examples.feed_cache.refresh_feed"


def make_app() -> Offload:
    """The app: the cache service and the refresh task."""
    app = build(Offload())

    @app.task(name=REFRESH, retries=2)
    def refresh_feed() -> int:
        """Fetch the feed (a stand-in for a slow HTTP call) and cache it for an hour."""
        time.sleep(0.5)
        cache = app.services["cache"]
        fetches = (cache.call({"op": "get", "key": "fetches"}) or 0) + 1
        items = [f"story {n}" for n in range(1, 6)]
        cache.call({"op": "put", "key": "fetches", "value": fetches, "ttl": 10 * FEED_TTL})
        cache.call({"op": "put", "key": "feed", "value": items, "ttl": FEED_TTL})
        return fetches

    return app


def get_feed(app: Offload) -> list[str] | None:
    """The feed, or None while the one refresh it started (if needed) runs."""
    feed: Any = app.services["cache"].call({"op": "get", "key": "feed"}, timeout=2.0)
    if feed is None:
        # At most one refresh job is queued or running: a crowd starts one.
        app.tasks[REFRESH].using(unique_key="feed:refresh").enqueue()
    return feed


app = make_app()


def main() -> None:
    from examples.service_runner import prepare, running_worker

    prepare()
    client = make_app()
    with running_worker("examples.feed_cache:app", ["cache"]):
        answers: list[Any] = []
        crowd = [
            threading.Thread(target=lambda: answers.append(get_feed(client))) for _ in range(50)
        ]
        for thread in crowd:
            thread.start()
        for thread in crowd:
            thread.join()
        print(f"50 clients asked at once: {answers.count(None)} saw no feed yet")
        deadline = time.monotonic() + 60
        while get_feed(client) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        print("feed:", get_feed(client))
        for _ in range(100):
            get_feed(client)
        fetches = client.services["cache"].call({"op": "get", "key": "fetches"})
        print(f"after 150 more requests: fetched {fetches} time(s)")
    client.close()


if __name__ == "__main__":
    main()
