"""Processes: heartbeats, stop, gone detection and pruning of the process table."""

from __future__ import annotations

import time
from typing import Any

import pytest

from offload.store import Store
from offload.types import ProcessInfo


def proc(pid: int = 100, **fields: Any) -> ProcessInfo:
    fields.setdefault("id", f"p{pid}")
    return ProcessInfo(kind=fields.pop("kind", "supervisor"), host="h", pid=pid, **fields)


def test_process_heartbeat_inserts_then_updates(store: Store) -> None:
    store.process_heartbeat([proc(1, queues="default", rss=10, peak_rss=50), proc(2, kind="child")])
    first = {p.id: p for p in store.process_list(gone_after=60)}
    assert set(first) == {"p1", "p2"}
    assert first["p1"].status == "running" and first["p1"].queues == "default"
    assert first["p1"].heartbeat_at == pytest.approx(store.now(), abs=5)
    time.sleep(0.02)
    store.process_heartbeat([proc(1, served=5, failed=1, current_job="j", rss=20, peak_rss=20)])
    (p1,) = [p for p in store.process_list(gone_after=60) if p.id == "p1"]
    assert (p1.served, p1.failed, p1.current_job, p1.rss) == (5, 1, "j", 20)
    assert p1.peak_rss == 50  # the peak never goes down
    assert p1.heartbeat_at > first["p1"].heartbeat_at
    assert p1.started_at == first["p1"].started_at


def test_process_list_marks_silent_processes_gone(store: Store) -> None:
    store.process_heartbeat([proc(1)])
    time.sleep(0.15)
    store.process_heartbeat([proc(2)])
    status = {p.id: p.status for p in store.process_list(gone_after=0.1)}
    assert status == {"p1": "gone", "p2": "running"}


def test_process_stop_marks_stopped_until_the_next_heartbeat(store: Store) -> None:
    store.process_heartbeat([proc(1, current_job="j")])
    store.process_stop(["p1", "nobody"])
    (p,) = store.process_list(gone_after=60)
    assert p.status == "stopped" and p.stopped_at is not None and p.current_job is None
    store.process_heartbeat([proc(1)])
    (p,) = store.process_list(gone_after=60)
    assert p.status == "running" and p.stopped_at is None


def test_process_prune_removes_stopped_and_gone_rows(store: Store) -> None:
    store.process_heartbeat([proc(1), proc(2), proc(3)])
    store.process_stop(["p1"])
    time.sleep(0.15)
    store.process_heartbeat([proc(3)])
    assert store.process_prune(older_than=0.1) == 2
    assert [p.id for p in store.process_list(gone_after=60)] == ["p3"]
