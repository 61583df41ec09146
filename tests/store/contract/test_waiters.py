"""Waiters: wake-ups on insert for the queues a worker listens on."""

from __future__ import annotations

import threading
import time

from offload.store import Store
from tests.store.contract.helpers import add


def test_waiter_wakes_quickly_on_insert(store: Store) -> None:
    waiter = store.waiter(["default"])
    try:
        inserted = threading.Event()

        def enqueue() -> None:
            time.sleep(0.1)
            add(store)
            inserted.set()

        thread = threading.Thread(target=enqueue)
        thread.start()
        start = time.monotonic()
        woke = waiter.wait(5.0)
        elapsed = time.monotonic() - start
        thread.join()
        assert woke
        assert inserted.is_set() or elapsed < 1.0
        assert elapsed < 1.0
    finally:
        waiter.close()


def test_waiter_times_out_without_work(store: Store) -> None:
    waiter = store.waiter(["default"])
    try:
        start = time.monotonic()
        assert waiter.wait(0.2) is False
        assert 0.15 <= time.monotonic() - start < 2.0
    finally:
        waiter.close()


def test_waiter_with_zero_timeout_reports_a_pending_wake_up(store: Store) -> None:
    waiter = store.waiter(["default"])
    try:
        assert waiter.wait(0) is False
        add(store)
        time.sleep(0.05)  # let the signal travel; wait(0) only looks, it never blocks
        assert waiter.wait(0) is True
        assert waiter.wait(0) is False  # consumed
    finally:
        waiter.close()


def test_waiter_ignores_other_queues(store: Store) -> None:
    waiter = store.waiter(["mail"])
    try:
        add(store, queue="video")
        assert waiter.wait(0.2) is False
        add(store, queue="mail")
        assert waiter.wait(2.0) is True
    finally:
        waiter.close()
