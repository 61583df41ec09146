"""A running worker pool: what it claims, how it reports, recycles and cancels."""

from __future__ import annotations

import json
import os
import signal
import time

from offload import JobState
from offload.testing import wait_for
from tests.worker.conftest import Harness


def test_process_table_shows_the_supervisor_and_its_children(harness: Harness) -> None:
    worker = harness.start("worker", "--concurrency", "2")

    def rows() -> bool:
        running = harness.processes()
        return len(running) == 3 and running

    running = wait_for(rows, timeout=10, what="three process rows")
    (supervisor,) = [p for p in running if p.kind == "supervisor"]
    children = [p for p in running if p.kind == "child"]
    assert supervisor.pid == worker.pid
    assert supervisor.queues == "default"
    assert len(children) == 2
    assert all(c.parent_id == supervisor.id and c.rss > 0 for c in children)

    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    assert harness.processes() == []
    assert len(harness.processes("stopped")) == 3


def test_job_of_an_unknown_task_stays_queued_until_a_worker_knows_it(harness: Harness) -> None:
    # Given a job of a task the first worker's app does not register
    extra = harness.task("extra").enqueue()
    small = harness.start("worker", "--concurrency", "1", app="tests.worker.apps:small_app")
    known = harness.task("record").enqueue(1)
    assert known.wait(timeout=10).state is JobState.SUCCEEDED

    # Then it stays queued, untouched and visible
    record = extra.refresh().record
    assert (record.state, record.attempt, record.errors) == (JobState.QUEUED, 0, 0)
    small.signal(signal.SIGTERM)
    assert small.wait(timeout=10) == 0

    # When a worker that knows the task starts, it runs
    harness.start("worker", "--concurrency", "1")
    assert extra.wait(timeout=10).result() == "extra"


def test_children_are_recycled_after_their_job_count(harness: Harness) -> None:
    jobs = [harness.task("pid").enqueue() for _ in range(20)]
    worker = harness.start("worker", "--concurrency", "2", recycle_min=5, recycle_max=5)

    pids = {job.wait(timeout=20).result() for job in jobs}

    assert len(pids) >= 4  # 20 jobs, at most 5 per child
    assert len(harness.rows("done")) == 20
    assert "event=child.recycle" in worker.log()


def test_children_over_the_memory_cap_are_recycled(harness: Harness) -> None:
    jobs = [harness.task("pid").enqueue() for _ in range(3)]
    harness.start("worker", "--concurrency", "1", child_memory_limit=1024 * 1024)

    pids = [job.wait(timeout=20).result() for job in jobs]

    assert len(set(pids)) == 3  # every child is over 1 MiB, so each serves one job


def test_cancel_of_a_running_job_is_seen_by_the_job(harness: Harness) -> None:
    job = harness.task("until_cancelled").enqueue()
    harness.start("worker", "--concurrency", "1")
    wait_for(lambda: harness.runs_of(job.id, "start") == 1, timeout=10, what="job started")

    assert job.cancel() is JobState.RUNNING

    assert job.wait(timeout=10).state is JobState.CANCELLED
    assert harness.runs_of(job.id) == 1  # the job saw ctx.cancel_requested and stopped


def test_task_memory_limit_turns_a_huge_allocation_into_a_failure(harness: Harness) -> None:
    job = harness.task("allocate").enqueue(1024)  # 1 GiB against a 64 MiB limit
    harness.start("worker", "--concurrency", "1")

    assert job.wait(timeout=15).state is JobState.FAILED
    assert "memory limit exceeded" in job.error["message"]  # type: ignore[index]
    # The limit was lifted after the job: the same child allocates freely again.
    after = harness.task("allocate").using(memory_limit=None).enqueue(100)
    assert after.wait(timeout=10).result() == 100 * 1024 * 1024


def test_async_tasks_and_log_lines(harness: Harness) -> None:
    log_file = harness.tmp / "worker.log"
    jobs = [harness.task("async_add").enqueue(i, 1) for i in range(3)]
    harness.start("worker", "--concurrency", "1", "--log-file", str(log_file))

    assert [j.wait(timeout=10).result() for j in jobs] == [1, 2, 3]
    text = wait_for(lambda: log_file.exists() and log_file.read_text(), timeout=5)
    line = next(ln for ln in text.splitlines() if "event=job.succeeded" in ln)
    assert f"job={jobs[0].id} task=tests.worker.apps.async_add attempt=1 " in line
    assert line.startswith("ts=") and " level=info " in line and "duration_ms=" in line


def test_new_jobs_start_without_waiting_for_a_poll(harness: Harness) -> None:
    harness.start("worker", "--concurrency", "1", poll_interval=30)
    wait_for(lambda: len(harness.processes()) == 2, timeout=10, what="worker up")

    job = harness.task("record").enqueue(5)

    # Only the wake-up datagram can start it this soon: the poll interval is 30 s.
    assert job.wait(timeout=5).result() == 5


def test_progress_messages_and_saves_reach_the_store_while_the_job_runs(
    harness: Harness,
) -> None:
    gate = harness.gate()
    job = harness.task("reporting").enqueue(str(gate))
    harness.start("worker", "--concurrency", "1")

    # The three reports may reach the store in separate writes: wait for the last one.
    wait_for(lambda: job.refresh().saved == {"partial": {"rows": 10}}, timeout=10, what="save")
    assert job.state is JobState.RUNNING
    assert (job.progress.current, job.progress.total) == (1, 4)
    # The last line logged is the progress message a status page shows.
    assert job.progress.message == "hello from the child"
    assert [m.text for m in job.messages()] == ["hello from the child"]
    gate.touch()

    assert job.wait(timeout=10).result() == "reported"
    assert [m.text for m in job.messages()] == ["hello from the child"]


def test_worker_serves_only_the_queues_it_is_given(harness: Harness) -> None:
    mail = harness.task("record").using(queue="mail").enqueue(1)
    other = harness.task("record").using(queue="reports").enqueue(2)
    default = harness.task("record").enqueue(3)
    harness.start("worker", "--concurrency", "1", "--queues", "mail,reports")

    assert mail.wait(timeout=10).result() == 1
    assert other.wait(timeout=10).result() == 2
    assert default.refresh().state is JobState.QUEUED


def test_async_jobs_of_one_child_share_its_event_loop(harness: Harness) -> None:
    jobs = [harness.task("loop_identity").enqueue() for _ in range(3)]
    harness.start("worker", "--concurrency", "1")

    identities = {tuple(job.wait(timeout=10).result()) for job in jobs}

    assert len(identities) == 1


def test_a_replacement_child_starts_work_at_once(harness: Harness) -> None:
    # Every job recycles its child; each replacement must be served on its first turn,
    # not at the next poll (30 s here) or the loop's idle timeout (1 s per job before).
    jobs = [harness.task("pid").enqueue() for _ in range(8)]
    harness.start("worker", "--concurrency", "1", recycle_min=1, recycle_max=1, poll_interval=30)

    jobs[0].wait(timeout=10)
    # Seven more recycles: about a second each before, a few milliseconds now.
    wait_for(lambda: all(j.refresh().finished for j in jobs), timeout=4, what="all jobs")
    assert len({job.result() for job in jobs}) == 8


def test_the_process_table_shows_a_job_soon_after_it_starts_and_ends(harness: Harness) -> None:
    # Heartbeats 5 s apart: only the write that follows a dispatch can show it this soon.
    worker = harness.start("worker", "--concurrency", "1", heartbeat=5, lease=15)
    wait_for(lambda: len(harness.processes()) == 2, timeout=10, what="worker up")
    time.sleep(0.3)  # past the rows written for the new child

    job = harness.task("sleep_for").enqueue(1.5)
    wait_for(lambda: harness.runs_of(job.id, "start"), timeout=10, interval=0.01, what="start")
    started = time.monotonic()
    wait_for(lambda: harness.child_running(job.id), timeout=1.4, interval=0.02, what="row")
    assert time.monotonic() - started < 0.5
    shown = harness.run("ps", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["current_job"] for r in rows if r["kind"] == "child"] == [job.id]

    assert job.wait(timeout=10).state is JobState.SUCCEEDED
    ended = time.monotonic()
    wait_for(lambda: harness.child_running(job.id) is None, timeout=2, interval=0.02)
    assert time.monotonic() - ended < 0.5
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0


def _open_files(pid: int) -> set[str]:
    """What ``pid``'s descriptors point to (``socket:[123]`` for a socket)."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue  # closed meanwhile
    return found


def _sockets(pid: int) -> set[str]:
    """The socket inodes ``pid`` holds open (``socket:[123]``)."""
    return {target for target in _open_files(pid) if target.startswith("socket:")}


def test_a_child_holds_no_descriptor_of_the_supervisor_but_its_own_pipe(harness: Harness) -> None:
    # Every job recycles its child: the replacements fork while the supervisor holds its
    # wake-up socket, its stop-signal socket and its other children's pipes.
    worker = harness.start("worker", "--concurrency", "2", recycle_min=1, recycle_max=1)
    jobs = [harness.task("record").enqueue(i) for i in range(6)]
    assert [j.wait(timeout=20).result() for j in jobs] == list(range(6))
    gate = harness.gate()
    held = [harness.task("gated").enqueue(str(gate)) for _ in range(2)]
    rows = [wait_for(lambda j=j: harness.child_running(j.id), timeout=15) for j in held]

    supervisor = _sockets(worker.pid)
    for row in rows:
        own = _sockets(row.pid)
        assert len(own) == 1, f"child {row.pid} holds {own}"  # its end of its pipe
        assert not own & supervisor
        store_files = [f for f in _open_files(row.pid) if "jobs.db" in f]
        assert store_files == [], f"child {row.pid} holds the store's files open"
    gate.touch()
    assert all(j.wait(timeout=10).state is JobState.SUCCEEDED for j in held)
