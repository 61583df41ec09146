"""Named locks with a TTL (the scheduler's leadership lock)."""

from __future__ import annotations

import time

from offload.store import Store


def test_lock_is_exclusive_while_held(store: Store) -> None:
    assert store.lock_acquire("scheduler", "a", ttl=30)
    assert not store.lock_acquire("scheduler", "b", ttl=30)
    assert store.lock_acquire("other", "b", ttl=30)


def test_lock_owner_renews_it(store: Store) -> None:
    assert store.lock_acquire("scheduler", "a", ttl=0.2)
    assert store.lock_acquire("scheduler", "a", ttl=30)
    time.sleep(0.3)
    assert not store.lock_acquire("scheduler", "b", ttl=30)


def test_expired_lock_goes_to_the_next_taker(store: Store) -> None:
    assert store.lock_acquire("scheduler", "a", ttl=0.05)
    time.sleep(0.1)
    assert store.lock_acquire("scheduler", "b", ttl=30)
    assert not store.lock_acquire("scheduler", "a", ttl=30)


def test_lock_release_frees_it_only_for_the_owner(store: Store) -> None:
    assert store.lock_acquire("scheduler", "a", ttl=30)
    store.lock_release("scheduler", "b")
    assert not store.lock_acquire("scheduler", "b", ttl=30)
    store.lock_release("scheduler", "a")
    assert store.lock_acquire("scheduler", "b", ttl=30)
