"""Groups under SIGKILL: members of a 200-job group killed while they run, and members
killed after adding members and before their outcome. Each time the callback runs
exactly once and the counts are right (every member stored once and counted once).

Runs on SQLite and PostgreSQL against real worker processes; the ledger says which jobs
and callbacks ran, the store what it counted."""

from __future__ import annotations

import random

from offload.groups import Group
from offload.testing import wait_for
from offload.types import JobState
from tests.faults.harness import FaultHarness, figure, kill
from tests.fixtures import processes
from tests.fixtures.processes import process_gone


def _callbacks(h: FaultHarness, group: Group) -> list[str]:
    return [r[3] for r in h.rows() if r[3].startswith(f"callback {group.id} ")]


def _kill_running(h: FaultHarness, task: str, kills: int, killed: set[str]) -> None:
    """SIGKILL the child of ``kills`` different running jobs of ``task`` (ledger rows:
    started, not done), never the same job twice (three crashes would quarantine it)."""
    name = f"tests.faults.apps.{task}"
    for _ in range(kills):

        def victim() -> tuple[str, int] | None:
            done = {(r[0], r[1]) for r in h.rows("done")}
            running = [
                (job_id, pid)
                for job_id, attempt, pid, phase in h.rows("start")
                if (job_id, attempt) not in done and job_id not in killed
            ]
            return random.choice(running) if running else None

        job_id, pid = wait_for(victim, timeout=60, what=f"a running {name} job")
        killed.add(job_id)
        kill(pid)
        wait_for(lambda pid=pid: process_gone(pid), timeout=10, what=f"child {pid} gone")


def _kill_worker(h: FaultHarness, worker: processes.WorkerProcess) -> None:
    """SIGKILL a whole worker (supervisor and children) and start another: the dead
    worker's leases run out and the new one rescues its jobs."""
    children = h.children(worker)
    kill(worker.pid)
    for pid in children:
        kill(pid)
    wait_for(lambda: process_gone(worker.pid), timeout=10, what="the killed supervisor gone")
    h.start("--concurrency", "2")


def _assert_complete(h: FaultHarness, group: Group, total: int) -> None:
    group.wait(timeout=180)
    assert (group.total, group.succeeded, group.failed) == (total, total, 0), group
    # One callback job is stored, with the counts; it runs once (nobody kills it).
    count = h.sql("SELECT count(*) FROM {jobs} WHERE task = %s", ("tests.faults.apps.group_done",))
    assert count == [(1,)]
    callback = h.app.get_job(group.callback_id or "")
    assert callback.kwargs == {"group_id": group.id, "succeeded": total, "failed": 0}
    callback.wait(timeout=60)
    assert callback.state is JobState.SUCCEEDED
    assert _callbacks(h, group) == [f"callback {group.id} {total} 0"]


def test_members_of_a_200_job_group_sigkilled_while_they_run(faults: FaultHarness) -> None:
    h = faults
    with h.app.group(name="kill-200", then=h.task("group_done")) as group:
        group.add_many(h.task("work"), [("group-200", i, 100) for i in range(200)])
    worker = h.start("--concurrency", "2")
    killed: set[str] = set()
    _kill_running(h, "work", 3, killed)
    # And a whole worker (supervisor and children): its leases run out, another rescues.
    _kill_worker(h, worker)
    _kill_running(h, "work", 2, killed)
    _assert_complete(h, group, 200)
    figure("group-200-sigkill", h.backend, members=200, kills=len(killed) + 1)


def test_members_sigkilled_after_adding_members(faults: FaultHarness) -> None:
    h = faults
    # 8 roots, each adding 3 members that add 3 more: 8 + 24 + 72 = 104 members.
    with h.app.group(name="fan-out", then=h.task("group_done")) as group:
        group.add_many(h.task("fan_out"), [(2, 3, 150)] * 8)
    worker = h.start("--concurrency", "2")
    killed: set[str] = set()
    _kill_running(h, "fan_out", 3, killed)
    _kill_worker(h, worker)
    _kill_running(h, "fan_out", 3, killed)
    _assert_complete(h, group, 104)
    adders = [k for k in killed if h.app.store.group_of_job(k) == group.id]
    assert len(adders) == 6
    figure("group-fan-out-sigkill", h.backend, members=104, kills=len(killed) + 1)
