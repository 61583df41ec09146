"""``autostart="spawn"``: an enqueue with no worker or drain serving its queue on this host
starts one detached drain, which runs the job, outlives the enqueuing process and exits
once idle; with one serving, nothing starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

from offload import JobState
from offload.testing import wait_for
from tests.autostart.conftest import Host
from tests.fixtures import processes

ENQUEUER = ["-m", "tests.autostart.apps"]


def test_fifty_concurrent_enqueues_from_eight_processes_start_exactly_one_drain(
    host: Host,
) -> None:
    # Given 8 web processes, each about to enqueue its share of 50 jobs at once
    gate = host.tmp / "go"
    shares = [7, 7, 6, 6, 6, 6, 6, 6]
    enqueuers = [host.popen([*ENQUEUER, str(n), str(gate)], autostart="spawn") for n in shares]
    wait_for(lambda: not host.serving(), what="nothing serving yet")  # sanity

    # When they all enqueue at the same moment, with no worker anywhere
    gate.touch()
    outputs = [proc.communicate(timeout=60) for proc in enqueuers]
    assert [proc.returncode for proc in enqueuers] == [0] * 8, [err for _, err in outputs]
    ids = [line for out, _ in outputs for line in out.split()]
    assert len(ids) == 50

    # Then every job runs, and exactly one drain was started, by one of them
    for job_id in ids:
        assert host.app.get_job(job_id).wait(timeout=60).state is JobState.SUCCEEDED
    started = [
        line for _, err in outputs for line in err.splitlines() if "autostart.started" in line
    ]
    assert len(started) == 1, started
    assert len(host.events("worker.started", kind="drain")) == 1, host.log_text()
    (drain,) = host.live("drain")
    assert {row[0] for row in host.runs()} == set(ids)
    assert {host.app.get_job(i).record.worker_id.split(":")[1] for i in ids} == {str(drain)}


def test_the_spawned_drain_outlives_its_parent_runs_the_job_and_exits_when_idle(
    host: Host,
) -> None:
    # Given a script that enqueues one job and ends at once
    script = host.tmp / "script.py"
    script.write_text(
        "from tests.autostart.apps import record\nprint(record.enqueue('from a script').id)\n"
    )
    proc = host.popen([str(script)], autostart="spawn", autostart_idle=1)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    job_id = out.strip()

    # Then its job runs in a drain that outlived it
    job = host.app.get_job(job_id).wait(timeout=60)
    assert job.state is JobState.SUCCEEDED
    drain_pid = int(job.record.worker_id.split(":")[1])
    assert drain_pid != proc.pid
    assert [row[0] for row in host.runs()] == [job_id]
    assert len(host.events("worker.started", kind="drain", pid=str(drain_pid))) == 1

    # And that drain stops once idle, leaving no lock held
    wait_for(lambda: host.events("worker.stopping"), timeout=60, what="the idle exit")
    assert 'reason="idle for 1 s"' in host.events("worker.stopping")[0]
    wait_for(lambda: processes.process_gone(drain_pid), timeout=30, what="the drain to exit")
    assert not host.serving()
    assert drain_pid not in host.live()


def test_the_drain_is_detached_from_the_enqueuer_session_and_descriptors(host: Host) -> None:
    # Given an enqueuing process holding an inheritable descriptor
    marker = host.tmp / "marker"
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT)
    os.set_inheritable(fd, True)
    try:
        app = host.enqueuing_app(autostart="spawn")
        gate = host.tmp / "gate"
        job = app.enqueue_by_name("gated", [str(gate)])
        wait_for(lambda: host.runs("start"), timeout=60, what="the job to start")

        # Then the drain running it leads its own session, reads /dev/null, writes the log,
        # and inherited nothing else
        (drain_pid,) = host.live("drain")
        assert os.getsid(drain_pid) == drain_pid != os.getsid(0)
        assert os.readlink(f"/proc/{drain_pid}/fd/0") == "/dev/null"
        assert os.readlink(f"/proc/{drain_pid}/fd/1") == str(host.log)
        links = [
            os.readlink(f"/proc/{drain_pid}/fd/{n}") for n in os.listdir(f"/proc/{drain_pid}/fd")
        ]
        assert str(marker) not in links
        assert not any(link.endswith("spawn.default.lock") for link in links)  # let go: serving
        gate.touch()
        assert app.get_job(job.id).wait(timeout=60).state is JobState.SUCCEEDED
    finally:
        os.close(fd)


def test_no_drain_starts_while_a_worker_serves_the_queue(sqlite_host: Host) -> None:
    host = sqlite_host
    worker = host.start("worker", "--concurrency", "1")
    wait_for(host.serving, timeout=60, what="the worker to serve")
    app = host.enqueuing_app(autostart="spawn")

    jobs = [app.enqueue_by_name("record", [str(n)]) for n in range(20)]

    for job in jobs:
        assert app.get_job(job.id).wait(timeout=60).state is JobState.SUCCEEDED
    assert not host.log.exists(), host.log_text()  # no drain was started, nothing logged
    assert set(host.live()) == {worker.pid}
    assert {app.get_job(j.id).record.worker_id.split(":")[1] for j in jobs} == {str(worker.pid)}


def test_a_worker_that_is_shutting_down_does_not_count_as_alive(sqlite_host: Host) -> None:
    # Given a worker finishing a long job after SIGTERM (it lets go of its locks at once)
    host = sqlite_host
    gate = host.tmp / "gate"
    worker = host.start("worker", "--concurrency", "1", shutdown_grace=60)
    wait_for(host.serving, timeout=60, what="the worker to serve")
    app = host.enqueuing_app(autostart="spawn")
    long_job = app.enqueue_by_name("gated", [str(gate)])
    wait_for(lambda: host.runs("start"), timeout=60, what="the long job to start")
    worker.signal(signal.SIGTERM)
    wait_for(lambda: not host.serving(), timeout=60, what="the worker to let go")
    assert worker.popen.poll() is None  # still running its job

    # When a job is enqueued, a drain starts for it
    job = app.enqueue_by_name("record", ["after"])
    assert app.get_job(job.id).wait(timeout=60).state is JobState.SUCCEEDED
    assert len(host.events("worker.started", kind="drain")) == 1
    gate.touch()
    assert worker.wait(timeout=60) == 0
    assert app.get_job(long_job.id).wait(timeout=30).state is JobState.SUCCEEDED


def test_each_queue_gets_its_own_drain(sqlite_host: Host) -> None:
    host = sqlite_host
    app = host.enqueuing_app(autostart="spawn")
    first = app.enqueue_by_name("record", ["a"])
    second = app.enqueue_by_name("mail", ["b"], queue="mail")
    for job in (first, second):
        assert app.get_job(job.id).wait(timeout=60).state is JobState.SUCCEEDED
    queues = sorted(info[1] for info in host.live("drain").values())
    assert queues == [("default",), ("mail",)]


def test_a_task_in_main_warns_once_and_starts_nothing(sqlite_host: Host) -> None:
    host = sqlite_host
    script = host.tmp / "main_app.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, warnings
        warnings.simplefilter("always")
        from offload import Offload
        app = Offload({host.url!r}, autostart="spawn")

        @app.task(name="here")
        def here() -> None: ...

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                here.enqueue()
        print(json.dumps([[w.category.__name__, str(w.message), w.filename] for w in caught]))
    """)
    )
    env = host.env()
    del env["OFFLOAD_APP"]
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=host.tmp, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    caught = json.loads(proc.stdout)
    assert len(caught) == 1, caught
    category, message, filename = caught[0]
    assert category == "ConfigWarning" and filename == str(script)
    assert "OFFLOAD_APP" in message and "autostart_app" in message and "__main__" in message
    assert proc.stderr.count("event=autostart.no_app") == 1
    assert not host.log.exists()
    assert not host.live()
    assert host.app.store.job_counts()


def test_a_drain_with_idle_exit_takes_jobs_that_come_while_it_waits(sqlite_host: Host) -> None:
    host = sqlite_host
    drain = host.start("drain", "--idle-exit", "60", "--concurrency", "1")
    wait_for(host.serving, timeout=60, what="the drain to serve")

    jobs = [host.app.enqueue_by_name("record", [str(n)]) for n in range(3)]

    for job in jobs:
        assert host.app.get_job(job.id).wait(timeout=60).state is JobState.SUCCEEDED
        assert host.app.get_job(job.id).record.worker_id.split(":")[1] == str(drain.pid)
    assert drain.popen.poll() is None  # still there: not idle for a minute yet
    drain.signal(signal.SIGTERM)
    assert drain.wait(timeout=60) == 0
    assert not host.serving()


def test_an_after_response_job_left_to_the_workers_starts_a_drain(sqlite_host: Host) -> None:
    from offload.after_response import RequestJobs

    host = sqlite_host
    app = host.enqueuing_app(autostart="spawn", after_response_threads=0)

    @app.task(name="record")
    def record(tag: str = "") -> None: ...

    with RequestJobs() as request:
        job = record.after_response("after the response")
    request.hand_over()  # no thread here: the job is for the workers

    assert app.get_job(job.id).wait(timeout=60).state is JobState.SUCCEEDED
    (drain,) = host.live("drain")
    assert app.get_job(job.id).record.worker_id.split(":")[1] == str(drain)
