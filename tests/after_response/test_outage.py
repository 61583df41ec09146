"""The store full or away while a request adds an after-response job: the request still
succeeds, the refusal is logged (task name, encoded size of the arguments), the task runs
in memory only where allowed, and the next call after the store is back just works."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from offload import JobState
from offload.testing import wait_for
from tests.after_response.conftest import Web
from tests.after_response.servers import Server
from tests.fixtures import processes
from tests.fixtures.postgres import PostgresServer


def not_stored_line(log: str, job_id: str) -> str:
    lines = [line for line in log.splitlines() if f"job={job_id}" in line]
    assert lines, f"no log line for {job_id}:\n{log}"
    return lines[0]


@pytest.mark.parametrize("fallback", ["log", "memory"])
def test_postgres_stopped_the_request_succeeds_and_the_next_call_after_restart_works(
    pg_web: Web, postgres_server: PostgresServer, fallback: str
) -> None:
    server = pg_web.serve("starlette-uvicorn", after_response_fallback=fallback)
    warm = server.after("record", "warm")["ids"][0]
    assert pg_web.job(warm).wait(timeout=10).state is JobState.SUCCEEDED
    pg_web.app.close()

    postgres_server.stop("fast")
    try:
        reply = server.after("record", "in the outage")  # a 200, with a job not stored
        assert reply["stored"] == [False]
        (job_id,) = reply["ids"]
        line = not_stored_line(server.log(), job_id)
        assert "level=error event=after_response.not_stored task=record" in line
        assert "args_bytes=19 " in line and "StoreUnavailable" in line
        if fallback == "memory":  # allowed: it runs here, without a record
            wait_for(lambda: pg_web.runs(job_id), timeout=10, what="the in-memory run")
            assert [row[2] for row in pg_web.runs(job_id)] == [reply["pid"]]
            assert "event=after_response.memory_run task=record" in server.log()
        else:
            assert 'fallback="none: the task will not run"' in line
    finally:
        postgres_server.start()

    # The store is back: the next call is stored and runs, with no restart.
    after = server.after("record", "after")
    assert after["stored"] == [True]
    assert pg_web.job(after["ids"][0]).wait(timeout=10).state is JobState.SUCCEEDED
    if fallback == "log":
        assert pg_web.runs(job_id) == []  # refused, logged, and not run
    assert server.popen.poll() is None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, list[Server]]]:
    """An 8 MB tmpfs at ``tmp_path/disk`` that only the server started in it sees."""
    disk = tmp_path / "disk"
    disk.mkdir()
    servers: list[Server] = []
    yield disk, servers
    for server in servers:
        server.kill()


def test_sqlite_disk_full_the_request_succeeds_and_the_next_call_after_freeing_works(
    tmp_path: Path, small_disk: tuple[Path, list[Server]]
) -> None:
    disk, servers = small_disk
    ledger = tmp_path / "ledger.db"
    mount = f"mount -t tmpfs -o size=8m tmpfs {disk} && exec"
    server = Server(
        "starlette-uvicorn", f"sqlite:///{disk / 'jobs.db'}", ledger, tmp_path / "server.log",
        wrap=["unshare", "-m", "--propagation", "private", "sh", "-c", mount],
        min_free_bytes=2 * 1024 * 1024,
    )  # fmt: skip
    servers.append(server)
    seen = Path(f"/proc/{server.pid}/root{disk}")  # the server's tmpfs, from outside

    def succeeded(job_id: str) -> bool:  # read by the server: only it sees the store
        return bool(server.get("/job", id=job_id).json()["state"] == "succeeded")

    first = server.after("record", "before")["ids"][0]
    wait_for(lambda: succeeded(first), timeout=10, what="the first job")

    # When the disk fills up (below the store's free-space reserve)
    filler = seen / "filler"
    stat = os.statvfs(seen)
    filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 1024 * 1024))
    reply = server.after("record", "disk full")
    assert reply["stored"] == [False]
    line = not_stored_line(server.log(), reply["ids"][0])
    assert "event=after_response.not_stored task=record" in line and "StoreFull" in line
    assert " args_bytes=15 " in line, line

    # Then, once space is freed, the next call is stored and runs
    filler.unlink()
    after = server.after("record", "after")
    assert after["stored"] == [True]
    wait_for(lambda: succeeded(after["ids"][0]), timeout=10, what="the job after freeing")
    assert {row[0] for row in processes.ledger_rows(ledger)} == {first, after["ids"][0]}
