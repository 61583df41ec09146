"""``offload ensure`` from cron: starts one pool when none of its queues runs here, does
nothing (quietly) while one is alive, and does not count a pool that is stopping."""

from __future__ import annotations

import signal

import pytest

from offload import JobState
from offload.testing import wait_for
from tests.autostart.conftest import Host

QUEUES = ("default", "mail")


def _ensure(host: Host, *args: str) -> tuple[int, str, str]:
    proc = host.offload("ensure", "--concurrency", "1", *args)
    out, err = proc.communicate(timeout=90)
    return proc.returncode, out, err


def test_three_ensures_at_once_start_one_pool(sqlite_host: Host) -> None:
    host = sqlite_host
    procs = [host.offload("ensure", "--concurrency", "1") for _ in range(3)]
    results = [(p.communicate(timeout=90), p.returncode) for p in procs]

    assert [code for _, code in results] == [0, 0, 0], results
    outs = [out for (out, _), _ in results]
    assert sum("ensure: started a pool" in out for out in outs) == 1, outs
    assert sum(out == "" for out in outs) == 2, outs  # the others: quiet
    assert len(host.events("ensure.started")) == 1, host.log_text()
    assert len(host.events("worker.started", kind="supervisor")) == 1
    (pid,) = host.live("supervisor")
    assert host.live("supervisor")[pid] == ("supervisor", QUEUES)
    assert host.pool_alive(QUEUES)

    # The pool it started runs jobs
    job = host.app.enqueue_by_name("record", ["via the pool"])
    assert host.app.get_job(job.id).wait(timeout=60).state is JobState.SUCCEEDED
    assert host.app.get_job(job.id).record.worker_id.split(":")[1] == str(pid)


def test_ensure_while_a_pool_is_alive_does_nothing(sqlite_host: Host) -> None:
    host = sqlite_host
    worker = host.start("worker", "--concurrency", "1")  # any pool of the queues counts
    wait_for(lambda: host.pool_alive(QUEUES), timeout=60, what="the pool to serve")

    for _ in range(2):
        code, out, err = _ensure(host)
        assert (code, out) == (0, ""), err

    assert set(host.live()) == {worker.pid}
    assert host.events("ensure.started") == []
    assert len(host.events("ensure.alive")) == 2


def test_a_pool_that_is_stopping_is_not_alive(sqlite_host: Host) -> None:
    # Given a pool finishing a long job after SIGTERM
    host = sqlite_host
    gate = host.tmp / "gate"
    worker = host.start("worker", "--concurrency", "1", shutdown_grace=60)
    wait_for(lambda: host.pool_alive(QUEUES), timeout=60, what="the pool to serve")
    host.app.enqueue_by_name("gated", [str(gate)])
    wait_for(lambda: host.runs("start"), timeout=60, what="the long job to start")
    worker.signal(signal.SIGTERM)
    wait_for(lambda: not host.pool_alive(QUEUES), timeout=60, what="the pool to let go")

    # When cron runs ensure, a new pool starts
    code, out, err = _ensure(host)
    assert code == 0, err
    assert "ensure: started a pool" in out
    assert worker.popen.poll() is None  # the old pool still finishes its job
    new = [pid for pid in host.live("supervisor") if pid != worker.pid]
    assert len(new) == 1
    gate.touch()
    assert worker.wait(timeout=60) == 0


def test_ensure_of_other_queues_starts_another_pool(sqlite_host: Host) -> None:
    host = sqlite_host
    host.start("worker", "--concurrency", "1", "--queues", "default")
    wait_for(lambda: host.pool_alive(("default",)), timeout=60, what="the pool to serve")
    code, out, err = _ensure(host, "--queues", "mail")
    assert code == 0 and "ensure: started a pool" in out, err
    assert sorted(info[1] for info in host.live("supervisor").values()) == [
        ("default",),
        ("mail",),
    ]


@pytest.mark.parametrize("spec", ["tests.autostart.nowhere:app"])
def test_ensure_with_an_app_that_cannot_be_imported_exits_2(sqlite_host: Host, spec: str) -> None:
    proc = sqlite_host.offload("ensure", "--app", spec)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "cannot import" in err
    assert not sqlite_host.live()
