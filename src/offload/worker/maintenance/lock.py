"""The drain lock: a drain renews the store lock that keeps one drain per queue set, stops
if another process took it, and releases it on exit."""

from __future__ import annotations

from collections.abc import Callable

from offload.worker.component import Shared
from offload.worker.maintenance import Duty


class LockRenewal(Duty):
    """Renews ``config.lock_name`` (nothing to do without one); ``on_lost(why)`` stops the
    worker when another process holds it."""

    def __init__(self, shared: Shared, on_lost: Callable[[str], None]) -> None:
        self._shared = shared
        self._on_lost = on_lost

    def run(self) -> bool:
        shared = self._shared
        name = shared.config.lock_name
        if name is None:
            return True
        held = shared.guard.call(
            "lock", lambda: shared.store.lock_acquire(name, shared.worker_id, shared.settings.lease)
        )
        if held is False:
            self._on_lost(f"lost the lock {name} to another process")
        return held is not None

    def close(self) -> None:
        shared = self._shared
        if shared.config.lock_name:
            name = shared.config.lock_name
            shared.guard.call(
                "lock_release", lambda: shared.store.lock_release(name, shared.worker_id)
            )
