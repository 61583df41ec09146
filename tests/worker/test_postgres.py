"""The worker on PostgreSQL: the same supervisor, woken through its LISTEN connection."""

from __future__ import annotations

import signal

from offload import JobState
from offload.testing import wait_for
from tests.worker.conftest import Harness


def test_worker_on_postgres_is_woken_by_notify_and_survives_a_child_kill(
    pg_harness: Harness,
) -> None:
    h = pg_harness
    gate = h.gate()
    worker = h.start("worker", "--concurrency", "2", poll_interval=30)
    wait_for(lambda: len(h.processes()) == 3, timeout=15, what="worker up")

    # Only NOTIFY can start these soon: the poll interval is 30 s.
    victim = h.task("gated").enqueue(str(gate))
    quick = h.task("record").enqueue(3)
    assert quick.wait(timeout=5).result() == 3
    child = wait_for(lambda: h.child_running(victim.id), timeout=10, what="child row")
    h.signal_pid(child.pid, signal.SIGKILL)
    wait_for(lambda: h.runs_of(victim.id, "start") == 2, timeout=10, what="second run")
    gate.touch()

    assert victim.wait(timeout=10).state is JobState.SUCCEEDED
    assert h.runs_of(victim.id) == 1
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0


def test_drain_on_postgres(pg_harness: Harness) -> None:
    jobs = [pg_harness.task("record").enqueue(i) for i in range(4)]

    done = pg_harness.run("drain", "--concurrency", "2")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("drain: 4 runs: 4 succeeded, 0 retried, 0 failed, 0 refused")
    assert all(j.refresh().state is JobState.SUCCEEDED for j in jobs)


def _server_sockets(pid: int, port: int) -> list[int]:
    """Inodes of the sockets ``pid`` holds to the PostgreSQL server on ``port``."""
    import psutil

    try:
        connections = psutil.Process(pid).net_connections(kind="inet")
    except psutil.NoSuchProcess:
        return []
    return [c.fd for c in connections if c.raddr and c.raddr.port == port]


def test_children_hold_no_connection_to_the_postgres_server(pg_harness: Harness) -> None:
    import psutil
    from psycopg.conninfo import conninfo_to_dict

    h = pg_harness
    port = int(conninfo_to_dict(h.url)["port"])
    # Every job recycles its child, so most children are forked while the supervisor
    # holds its LISTEN connection (and has just used its pool).
    worker = h.start("worker", "--concurrency", "2", recycle_min=1, recycle_max=1)
    jobs = [h.task("record").enqueue(i) for i in range(6)]
    assert [j.wait(timeout=20).result() for j in jobs] == list(range(6))
    gate = h.gate()
    held = [h.task("gated").enqueue(str(gate)) for _ in range(2)]
    wait_for(lambda: all(h.child_running(j.id) for j in held), timeout=15, what="children busy")

    assert _server_sockets(worker.pid, port), "the supervisor should hold its LISTEN socket"
    children = psutil.Process(worker.pid).children()
    assert len(children) >= 2
    for child in children:
        assert _server_sockets(child.pid, port) == [], f"child {child.pid} holds a server socket"
    gate.touch()
    assert all(j.wait(timeout=10).state is JobState.SUCCEEDED for j in held)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
