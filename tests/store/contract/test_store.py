"""The store object itself: its clock and reopening its connections after ``close``."""

from __future__ import annotations

import time

import pytest

from offload.store import Store
from tests.store.contract.helpers import Q, add, state


def test_now_is_the_stores_clock_in_epoch_seconds(store: Store) -> None:
    assert store.now() == pytest.approx(time.time(), abs=5)
    a = store.now()
    time.sleep(0.01)
    assert store.now() > a


def test_store_works_again_after_close(store: Store) -> None:
    (job_id,) = add(store)
    store.close()
    assert state(store, job_id) is Q.QUEUED
