"""Overload degrades to queueing, never to errors: far more after-response work than the
pool can take, all answered fast, and every job completed exactly once (in the web
process, or by a drain afterwards)."""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from offload import JobState
from offload.testing import wait_for
from tests.after_response.conftest import Web

REQUESTS = 200
SPREAD = 5.0  # seconds the requests are spread over
TASK = 1.0  # seconds each job takes


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_200_requests_adding_1s_tasks_to_4_threads_all_succeed(web: Web) -> None:
    server = web.serve("starlette-uvicorn", after_response_threads=4, after_response_backlog=8)
    params = {"task": "pause", "args": json.dumps([TASK])}

    # When 200 requests arrive within ~5 s, each adding a 1 s task (200 s of work for a
    # pool that does 4 s per second)
    def call(n: int) -> tuple[int, float, list[str]]:
        time.sleep(max(0.0, began + n * SPREAD / REQUESTS - time.monotonic()))
        start = time.monotonic()
        response = client.get("/after", params=params)
        return response.status_code, time.monotonic() - start, response.json()["ids"]

    with httpx.Client(base_url=server.base, timeout=30) as client, ThreadPoolExecutor(16) as ex:
        began = time.monotonic()
        results = list(ex.map(call, range(REQUESTS)))
        elapsed = time.monotonic() - began

    # Then every response is a fast success
    assert [status for status, _, _ in results] == [200] * REQUESTS
    latencies = sorted(latency for _, latency, _ in results)
    p99 = latencies[int(0.99 * REQUESTS) - 1]
    print(f"overload: {REQUESTS} requests in {elapsed:.1f} s, p50 "
          f"{statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")  # fmt: skip
    assert elapsed < SPREAD + 3
    assert p99 < 0.5, latencies[-5:]

    # And every job completes exactly once: those the pool could not take, by a drain
    ids = [job_id for _, _, batch in results for job_id in batch]
    drain = web.start("drain", "--concurrency", "24", "--budget", "40")
    assert drain.wait(timeout=60) == 0, drain.log()

    def all_done() -> bool:
        return len(web.rows("done")) >= REQUESTS

    wait_for(all_done, timeout=30, what="every job done")
    assert all(web.job(i).state is JobState.SUCCEEDED for i in ids)
    done = web.rows("done")
    assert sorted(row[0] for row in done) == sorted(ids)  # each once, none lost
    in_web = sum(1 for row in done if row[2] == server.pid)
    assert 4 <= in_web < REQUESTS  # the pool ran what it could; the drain took the rest
    assert "after_response.left_queued" in server.log()
    assert "Traceback" not in server.log()
