"""Services in real processes: calls, sends, crashes and restarts, recycling, TCP, the
process table. Each test starts its own host and kills what it must for real."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from offload import (
    JobState,
    SerializationError,
    ServiceAuthError,
    ServiceCallTimeout,
    ServiceFailed,
    ServiceNotFound,
    ServiceUnavailable,
)
from offload.services.protocol import parse_address
from offload.views import service_of
from tests.fixtures.processes import ROOT, process_gone
from tests.services.conftest import SECRET, Host, wait_for


def test_call_send_and_failures_round_trip_on_each_store(any_host: Host) -> None:
    any_host.start("--services", "echo,mailer")
    rows = any_host.wait_ready(["echo", "mailer"])
    echo = any_host.app.services["echo"]

    assert echo.call({"a": [1, 2.5, "x", None, True]}, timeout=10) == {
        "a": [1, 2.5, "x", None, True]
    }
    assert asyncio.run(echo.acall("async", timeout=10)) == "async"
    assert any_host.app.services["mailer"].send({"to": "ada@example.com"}) is None
    with pytest.raises(ServiceFailed) as failed:
        echo.call({"fail": "boom"}, timeout=10)
    assert (failed.value.error_type, failed.value.error_message) == (
        "ValueError",
        "asked to fail: boom",
    )
    pid = rows["mailer"].pid
    wait_for(lambda: f"mail ada@example.com {pid}" in any_host.ledger_lines(), what="the mail")
    # The process table: kind service, name, address, served and failed.
    row = wait_for(
        lambda: next((p for p in any_host.rows("echo") if p.served >= 3 and p.failed >= 1), None),
        what="echo's counts in the process table",
    )
    name, address = service_of(row) or ("", "")
    assert name == "echo" and parse_address(address).kind == "unix"
    assert row.rss > 0 and row.peak_rss >= row.rss and row.parent_id


def test_ps_lists_services_with_name_and_address(host: Host) -> None:
    host.start("--services", "echo")
    row = host.wait_ready(["echo"])["echo"]
    env = {**os.environ, "OFFLOAD_URL": host.url, "COLUMNS": "250", "OFFLOAD_HEARTBEAT": "1"}
    env.pop("OFFLOAD_APP", None)
    out = subprocess.run(
        [sys.executable, "-m", "offload", "ps"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    header = out.stdout.splitlines()[1].split()
    assert {"NAME", "ADDRESS", "SERVED", "FAILED", "RSS", "PEAK", "UPTIME"} <= set(header)
    line = next(line for line in out.stdout.splitlines() if f" {row.pid} " in line)
    assert "service" in line and "echo" in line and "unix:" in line
    as_json = subprocess.run(
        [sys.executable, "-m", "offload", "ps", "--json"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    services = [json.loads(x) for x in as_json.stdout.splitlines()]
    services = [p for p in services if p["kind"] == "service"]
    assert services[0]["info"]["service"] == "echo"
    assert services[0]["info"]["address"].startswith("unix:")


def test_payload_that_is_not_strict_json_is_refused_with_its_path(host: Host) -> None:
    with pytest.raises(SerializationError) as refused:
        host.app.services["echo"].call({"when": dt.datetime(2026, 1, 1)})
    assert refused.value.path == "payload['when']"
    with pytest.raises(ServiceNotFound, match="no service named 'nope'"):
        host.app.services["nope"]


def test_send_to_a_service_that_is_down_raises_at_once(host: Host) -> None:
    began = time.monotonic()
    with pytest.raises(ServiceUnavailable) as down:
        host.app.services["echo"].send({"x": 1})
    assert not down.value.sent
    assert time.monotonic() - began < 2.0


def test_unix_socket_is_owner_only(host: Host) -> None:
    host.start("--services", "echo")
    row = host.wait_ready(["echo"])["echo"]
    path = parse_address(service_of(row)[1]).path  # type: ignore[index]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700


def test_crash_is_restarted_within_two_seconds_and_not_run_again(host: Host) -> None:
    host.start("--services", "slow")
    first = host.wait_ready(["slow"])["slow"]
    slow = host.app.services["slow"]

    with pytest.raises(ServiceUnavailable) as lost:
        slow.call({"tag": "t1", "die": True}, timeout=10)
    assert lost.value.sent  # it may have run: the caller is told so
    died = time.monotonic()
    wait_for(lambda: process_gone(first.pid), what="the killed service to exit")

    # A new process, registered within 2 s of the crash.
    second = wait_for(
        lambda: next((p for p in host.rows("slow") if p.pid != first.pid), None), timeout=10,
        what="the restarted service",
    )  # fmt: skip
    assert time.monotonic() - died < 2.0
    assert slow.call({"tag": "t2"}, timeout=10) == "t2"
    # The crashed request ran once, on the first process; it was not sent again.
    starts = [line for line in host.ledger_lines() if line.startswith("slow start t1")]
    assert starts == [f"slow start t1 {first.pid}"]
    assert f"slow end t2 {second.pid}" in host.ledger_lines()


def test_caller_of_a_service_killed_mid_request_raises_within_its_timeout(host: Host) -> None:
    host.start("--services", "slow")
    row = host.wait_ready(["slow"])["slow"]
    outcome: dict[str, object] = {}

    def caller() -> None:
        began = time.monotonic()
        try:
            host.app.services["slow"].call({"tag": "long", "sleep": 30}, timeout=20)
        except Exception as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - began

    thread = threading.Thread(target=caller)
    thread.start()
    wait_for(lambda: f"slow start long {row.pid}" in host.ledger_lines(), what="the request")
    os.kill(row.pid, signal.SIGKILL)
    thread.join(timeout=25)
    assert not thread.is_alive()
    error = outcome["error"]
    assert isinstance(error, ServiceUnavailable) and error.sent
    assert outcome["seconds"] < 20  # type: ignore[operator]
    # Restarted, and the cut-short request is not run again (the service is not idempotent).
    wait_for(lambda: any(p.pid != row.pid for p in host.rows("slow")), what="the restart")
    assert host.app.services["slow"].call({"tag": "after"}, timeout=10) == "after"
    assert [x for x in host.ledger_lines() if "long" in x] == [f"slow start long {row.pid}"]


def test_idempotent_call_cut_short_is_answered_by_the_restarted_instance(host: Host) -> None:
    host.start("--services", "steady")
    first = host.wait_ready(["steady"])["steady"]
    assert host.app.services["steady"].call({"tag": "again", "die": True}, timeout=20) == "again"
    lines = host.ledger_lines()
    assert lines[0] == f"steady died again {first.pid}"
    assert len(lines) == 2 and lines[1].startswith("steady ran again ")
    assert lines[1] != f"steady ran again {first.pid}"


def test_stopped_service_makes_the_caller_time_out(host: Host) -> None:
    host.start("--services", "echo")
    row = host.wait_ready(["echo"])["echo"]
    echo = host.app.services["echo"]
    assert echo.call(1, timeout=10) == 1
    os.kill(row.pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        with pytest.raises(ServiceCallTimeout):
            echo.call(2, timeout=1.0)
        assert time.monotonic() - began < 5.0
    finally:
        os.kill(row.pid, signal.SIGCONT)
    assert echo.call(3, timeout=10) == 3


def test_send_while_down_is_stored_and_delivered_when_back(any_host: Host) -> None:
    host = any_host
    worker = host.start("--services", "mailer")
    first = host.wait_ready(["mailer"])["mailer"]
    mailer = host.app.services["mailer"]
    assert mailer.send({"to": "before@example.com"}) is None
    wait_for(lambda: any("before@" in x for x in host.ledger_lines()), what="the first mail")

    # The whole worker dies (SIGKILL): its service goes with it, nothing unregisters it.
    worker.signal(signal.SIGKILL)
    worker.wait()
    wait_for(lambda: process_gone(first.pid), what="the service to die with its worker")
    job = mailer.send({"to": "while-down@example.com"})
    assert job is not None and job.refresh().state in (JobState.QUEUED, JobState.RUNNING)

    # Back: the stored send reaches the new instance, and the job succeeds.
    host.start("--services", "mailer")
    # (The dead worker's row reads running until three heartbeats pass.)
    second = wait_for(
        lambda: next((p for p in host.rows("mailer") if p.pid != first.pid), None),
        what="the new instance",
    )  # fmt: skip
    wait_for(
        lambda: f"mail while-down@example.com {second.pid}" in host.ledger_lines(), timeout=60,
        what="the stored mail to be delivered",
    )  # fmt: skip
    assert job.wait(timeout=30).state is JobState.SUCCEEDED
    assert sum("while-down@" in x for x in host.ledger_lines()) == 1


def test_fifty_concurrent_callers_all_get_their_own_reply(host: Host) -> None:
    host.start("--services", "echo")
    host.wait_ready(["echo"])
    echo = host.app.services["echo"]
    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def caller(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(20):
                payload = {"caller": n, "i": i, "pad": "x" * (n * 10)}
                assert echo.call(payload, timeout=30) == payload
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    assert not any(t.is_alive() for t in threads)


def test_instance_is_recycled_after_its_requests_and_calls_keep_working(host: Host) -> None:
    host.start("--services", "recycled")
    host.wait_ready(["recycled"])
    recycled = host.app.services["recycled"]
    pids: list[int] = []

    def three_processes_served() -> bool:
        pids.append(recycled.call(None, timeout=20))  # raises if a call fails
        return len(set(pids)) >= 3

    wait_for(three_processes_served, what="two recycles")
    assert host.logs().count("service.recycle") >= 2


def test_loop_runs_after_requests_and_every_tick(host: Host) -> None:
    # A tick shorter than the pause between two polls below (each loop() pushes the next
    # tick one tick ahead, so requests coming faster than the tick leave no tick due).
    host.settings["service_tick"] = 0.005
    host.start("--services", "echo")
    host.wait_ready(["echo"])
    echo = host.app.services["echo"]
    first = echo.call({"loops": 1}, timeout=10)
    # After each request (once its reply is sent), and every tick between requests: the
    # count grows faster than one per call.
    calls = [0]

    def ticked() -> bool:
        calls[0] += 1
        return bool(echo.call({"loops": 1}, timeout=10) - first - calls[0] >= 5)

    wait_for(ticked, what="loop() calls on its own tick")
    before = echo.call({"loops": 1}, timeout=10)
    assert echo.call({"loops": 1}, timeout=10) >= before + 1  # the loop() after `before`


def test_tcp_loopback_with_a_secret(host: Host) -> None:
    host.settings["secret"] = SECRET
    host.app.settings = host.app.settings.replace(secret=SECRET)
    host.start("--services", "echo", "--service-bind", "127.0.0.1")
    row = host.wait_ready(["echo"])["echo"]
    address = parse_address(service_of(row)[1])  # type: ignore[index]
    assert (address.kind, address.host) == ("tcp", "127.0.0.1") and address.port > 0
    assert host.app.services["echo"].call("over tcp", timeout=10) == "over tcp"

    # A client holding another secret is refused during the handshake.
    from offload import Offload
    from tests.services.apps import register_all

    other = register_all(Offload(host.url, secret="another-secret-entirely"))
    try:
        with pytest.raises(ServiceAuthError, match="refused the handshake"):
            other.services["echo"].call("x", timeout=10)
    finally:
        other.close()


def test_tcp_on_a_public_address_without_a_secret_refuses_to_start(host: Host) -> None:
    worker = host.start("--services", "echo", "--service-bind", "0.0.0.0")
    assert worker.wait(60) == 2
    assert "OFFLOAD_SECRET" in worker.log()


def test_service_runs_alone(host: Host) -> None:
    host.start("echo", command="service")
    host.wait_ready(["echo"])
    assert host.app.services["echo"].call("alone", timeout=10) == "alone"
    rows = host.app.store.process_list(gone_after=3)
    kinds = sorted(p.kind for p in rows if p.status == "running")
    assert kinds == ["child", "service", "supervisor"]


def test_service_cli_names_an_unknown_service(host: Host) -> None:
    process = host.start("nope", command="service")
    assert process.wait(60) == 2
    assert "no service named 'nope'" in process.log()


def test_calls_are_spread_across_instances(host: Host) -> None:
    host.start("--services", "pair")
    wait_for(lambda: len(host.rows("pair")) == 2, what="two instances")
    pair = host.app.services["pair"]
    pids = {pair.call(None, timeout=20) for _ in range(60)}
    assert pids == {p.pid for p in host.rows("pair")}


def test_instance_over_its_memory_limit_is_recycled(host: Host) -> None:
    host.start("--services", "bloated")
    first = host.wait_ready(["bloated"])["bloated"]
    wait_for(lambda: any(p.pid != first.pid for p in host.rows("bloated")), what="the replacement")
    assert "over its memory_limit 1" in host.logs()
    assert host.app.services["bloated"].call(None, timeout=20) > 0


def test_a_drain_hosts_no_service(host: Host) -> None:
    drain = host.start(command="drain")
    assert drain.wait(60) == 0, drain.log()
    assert "service.started" not in drain.log()
    rows = host.app.store.process_list(gone_after=3)
    assert rows and not [p for p in rows if p.kind == "service"]


def test_worker_services_option_picks_none_or_refuses_an_unknown_name(host: Host) -> None:
    unknown = host.start("--services", "echo,nope")
    assert unknown.wait(60) == 2
    assert "no service named 'nope'" in unknown.log()
    none = host.start("--services", "none")
    wait_for(
        lambda: any(p.kind == "child" for p in host.app.store.process_list(gone_after=3)),
        what="the worker's child",
    )  # fmt: skip
    none.signal(signal.SIGTERM)
    assert none.wait(60) == 0
    assert "service.started" not in none.log()
