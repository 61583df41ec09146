"""Task names on the process table: what live workers register, and the tasks with
waiting jobs that none of them does (such jobs stay queued, but should not wait unseen)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from offload.store import Store
from offload.types import ProcessInfo
from tests.store.contract.helpers import add, claim


def proc(pid: int, **fields: Any) -> ProcessInfo:
    return ProcessInfo(id=f"p{pid}", kind="supervisor", host="h", pid=pid, **fields)


def test_publish_needs_the_process_row(store: Store) -> None:
    assert store.process_tasks_publish("p1", ["a"]) is False
    store.process_heartbeat([proc(1)])
    assert store.process_tasks_publish("p1", ["b", "a", "a"]) is True
    assert store.process_tasks_live(gone_after=60) == {"a", "b"}


def test_heartbeats_keep_the_published_tasks(store: Store) -> None:
    store.process_heartbeat([proc(1)])
    store.process_tasks_publish("p1", ["a"])
    store.process_heartbeat([proc(1, served=3)])
    assert store.process_tasks_live(gone_after=60) == {"a"}


def test_only_running_processes_register_tasks(store: Store) -> None:
    store.process_heartbeat([proc(1), proc(2), proc(3)])
    for n, task in ((1, "kept"), (2, "stopped"), (3, "silent")):
        store.process_tasks_publish(f"p{n}", [task])
    store.process_stop(["p2"])
    time.sleep(0.15)
    store.process_heartbeat([proc(1)])
    # p3 has not beaten for 0.15 s: gone after 0.1 s.
    assert store.process_tasks_live(gone_after=0.1) == {"kept"}
    assert store.process_tasks_live(gone_after=60) == {"kept", "silent"}


def test_unserved_tasks_count_queued_and_scheduled_jobs_no_live_process_registers(
    store: Store,
) -> None:
    add(store, 2, task="known")
    add(store, 3, task="lost")
    add(store, 1, task="later", delay=3600)
    (running,) = add(store, 1, task="running")
    assert claim(store, tasks=["running"], job_ids=[running])  # someone's already
    store.process_heartbeat([proc(1)])
    store.process_tasks_publish("p1", ["known", "running"])
    assert store.job_tasks_unserved(gone_after=60) == {"later": 1, "lost": 3}
    store.process_stop(["p1"])
    assert store.job_tasks_unserved(gone_after=60) == {"known": 2, "later": 1, "lost": 3}


def test_unserved_tasks_with_no_waiting_jobs_is_empty(store: Store) -> None:
    assert store.job_tasks_unserved(gone_after=60) == {}


def test_a_tasks_column_that_is_not_a_list_of_names_registers_nothing(store: Store) -> None:
    add(store, 1, task="a")
    store.process_heartbeat([proc(1), proc(2)])
    store.process_tasks_publish("p2", ["a"])
    _set_tasks_by_hand(store, "p1", '{"a": 1}')
    _set_tasks_by_hand(store, "p2", '["a", 7, null')
    assert store.process_tasks_live(gone_after=60) == set()
    assert store.job_tasks_unserved(gone_after=60) == {"a": 1}


def _set_tasks_by_hand(store: Store, process_id: str, text: str) -> None:
    if store.url.startswith("sqlite"):
        conn = sqlite3.connect(store.url[len("sqlite:///") :])
        with conn:
            conn.execute("UPDATE offload_processes SET tasks = ? WHERE id = ?", (text, process_id))
        conn.close()
        return
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as pg:
        pg.execute("UPDATE offload.processes SET tasks = %s WHERE id = %s", (text, process_id))
