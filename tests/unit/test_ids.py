"""ids: UUIDv7 strings, time-ordered and strictly increasing within a process."""

from __future__ import annotations

import itertools
import re
import threading
import time
import types
import uuid

import pytest

from offload import ids
from offload.ids import uuid7

CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def ms_of(job_id: str) -> int:
    """The 48-bit unix-millisecond prefix of a UUIDv7."""
    return int(job_id.replace("-", "")[:12], 16)


def counter_of(job_id: str) -> int:
    """The 12 ``rand_a`` bits (the per-millisecond counter)."""
    return uuid.UUID(job_id).int >> 64 & 0xFFF


def test_uuid7_is_a_canonical_version_7_rfc_9562_uuid() -> None:
    for _ in range(200):
        text = uuid7()
        assert CANONICAL.match(text), text
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text  # lower case, canonical grouping


def test_time_prefix_is_close_to_now() -> None:
    before = time.time_ns() // 1_000_000
    job_id = uuid7()
    after = time.time_ns() // 1_000_000
    # A burst of ids may borrow a few milliseconds ahead; it never goes behind the clock.
    assert before <= ms_of(job_id) <= after + 50


def test_ids_strictly_increase_even_many_in_one_millisecond() -> None:
    made = [uuid7() for _ in range(20_000)]
    assert all(a < b for a, b in itertools.pairwise(made))
    assert all(uuid.UUID(a).int < uuid.UUID(b).int for a, b in itertools.pairwise(made))
    per_ms: dict[int, int] = {}
    for job_id in made:
        per_ms[ms_of(job_id)] = per_ms.get(ms_of(job_id), 0) + 1
    assert max(per_ms.values()) > 1  # the burst really did put several ids in one millisecond


def test_ids_made_in_one_frozen_millisecond_count_up_then_borrow_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen = time.time_ns() // 1_000_000 + 10_000  # ahead of any id made so far
    monkeypatch.setattr(ids, "_last_ms", ids._last_ms)  # restored after the test
    monkeypatch.setattr(ids, "_counter", ids._counter)
    monkeypatch.setattr(ids, "time", types.SimpleNamespace(time_ns=lambda: frozen * 1_000_000))
    made = [uuid7() for _ in range(6000)]  # more than the 12-bit counter holds
    assert all(a < b for a, b in itertools.pairwise(made))
    assert ms_of(made[0]) == frozen
    assert counter_of(made[0]) <= 0x7FF  # seeded low, leaving room to count up
    assert ms_of(made[-1]) > frozen  # the counter ran out and borrowed the next millisecond
    assert ms_of(made[-1]) <= frozen + 3
    assert len(set(made)) == len(made)


def test_ids_keep_increasing_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    now_ms = time.time_ns() // 1_000_000 + 10_000
    clock = {"ms": now_ms}
    monkeypatch.setattr(ids, "_last_ms", ids._last_ms)
    monkeypatch.setattr(ids, "_counter", ids._counter)
    monkeypatch.setattr(ids, "time", types.SimpleNamespace(time_ns=lambda: clock["ms"] * 10**6))
    first = uuid7()
    clock["ms"] = now_ms - 5_000
    second = uuid7()
    assert second > first and ms_of(second) == now_ms


def test_ids_from_many_threads_are_unique_and_increase_per_thread() -> None:
    results: dict[int, list[str]] = {}

    def make(n: int) -> None:
        results[n] = [uuid7() for _ in range(2000)]

    threads = [threading.Thread(target=make, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for got in results.values() for i in got]
    assert len(set(everything)) == len(everything) == 8000
    for got in results.values():
        assert got == sorted(got)
