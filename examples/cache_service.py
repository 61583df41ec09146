"""A memory cache shared by every web process: ``get``/``put`` with a TTL, expired
entries swept in ``loop()``.

    python -m examples.cache_service      # starts a worker that hosts it, then uses it

Each web process reaches the one cache by name; its state is the service instance's
dict, in the service's own process. A restart empties it (it is a cache): ``get`` then
misses, and callers fill it again.
"""

from __future__ import annotations

import time
from typing import Any

from offload import Offload
from offload.services import Service


class Cache(Service):
    """Requests: ``{"op": "get", "key": k}``, ``{"op": "put", "key": k, "value": v,
    "ttl": seconds}``, ``{"op": "delete", "key": k}``, ``{"op": "stats"}``."""

    def setup(self) -> None:
        self.entries: dict[str, tuple[float, Any]] = {}
        self.swept = 0

    def work(self, request: dict[str, Any]) -> Any:
        op, key = request["op"], request.get("key")
        if op == "get":
            entry = self.entries.get(key)
            if entry is None or entry[0] <= time.monotonic():
                return None
            return entry[1]
        if op == "put":
            self.entries[key] = (time.monotonic() + float(request["ttl"]), request["value"])
            return True
        if op == "delete":
            return self.entries.pop(key, None) is not None
        if op == "stats":
            return {"entries": len(self.entries), "swept": self.swept}
        raise ValueError(f"unknown op {op!r}")

    def loop(self) -> None:
        now = time.monotonic()
        expired = [key for key, (until, _) in self.entries.items() if until <= now]
        for key in expired:
            del self.entries[key]
        self.swept += len(expired)


def build(app: Offload) -> Offload:
    """Register the cache on ``app`` (so other examples can share it)."""
    app.service("cache", idempotent=True, tick=0.1)(Cache)
    return app


def main() -> None:
    from examples.service_runner import prepare, running_worker

    prepare()
    app = build(Offload())
    with running_worker("examples.cache_service:app", ["cache"]):
        cache = app.services["cache"]
        cache.call({"op": "put", "key": "greeting", "value": "hello", "ttl": 60})
        cache.call({"op": "put", "key": "flash", "value": "gone soon", "ttl": 0.2})
        print("greeting:", cache.call({"op": "get", "key": "greeting"}))
        print("flash:", cache.call({"op": "get", "key": "flash"}))
        deadline = time.monotonic() + 30
        while cache.call({"op": "stats"})["swept"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        print("flash after its TTL:", cache.call({"op": "get", "key": "flash"}))
        print("stats:", cache.call({"op": "stats"}))
    app.close()


app = build(Offload())

if __name__ == "__main__":
    main()
