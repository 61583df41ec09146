"""Rows as plain data: payloads decoded, odd stored text kept as text."""

from __future__ import annotations

import dataclasses
import json

from offload.types import JobEvent, JobMessage, JobRow, JobState, ProcessInfo, Progress
from offload.views import decode, job_detail, job_dict, process_dict, uptime


def row(**changes: object) -> JobRow:
    fields: dict[str, object] = dict(
        id="j1", task="t", queue="default", state=JobState.FAILED, priority=0, args="[1]",
        kwargs='{"a":2}', attempt=1, max_attempts=1, errors=1, crashes=0, created_at=1.0,
        run_at=1.0, started_at=2.0, finished_at=3.0, leased_until=None, worker_id="w",
        timeout=None, options="{}", unique_key=None, progress=Progress(1, 4, "m"),
        result=None, error='{"type":"E","message":"x","traceback":""}', saved="{}",
        cancel_requested=False,
    )  # fmt: skip
    fields.update(changes)
    return JobRow(**fields)  # type: ignore[arg-type]


def test_job_dict_decodes_payloads_and_is_json() -> None:
    data = job_dict(row())
    assert data["state"] == "failed"
    assert data["args"] == [1] and data["kwargs"] == {"a": 2}
    assert data["error"]["type"] == "E"
    assert data["progress"] == {"current": 1, "total": 4, "message": "m", "percent": 25.0}
    json.dumps(data, allow_nan=False)


def test_text_that_is_not_json_is_kept() -> None:
    assert decode("not json") == "not json"
    assert decode("[" * 100_000) == "[" * 100_000
    assert job_dict(row(result="{oops"))["result"] == "{oops"


def test_job_detail_lists_history_and_messages() -> None:
    data = job_detail(row(), [JobEvent(1.0, 1, "started", "w", "")], [JobMessage(2.0, 1, "hi")])
    assert data["events"][0]["kind"] == "started"
    assert data["messages"] == [{"at": 2.0, "attempt": 1, "text": "hi"}]


def test_process_uptime_ends_when_it_stopped_or_went_away() -> None:
    base = ProcessInfo(id="p", kind="supervisor", host="h", pid=1, started_at=100.0)
    stopped = dataclasses.replace(base, status="stopped", stopped_at=130.0)
    gone = dataclasses.replace(base, status="gone", heartbeat_at=120.0)
    assert uptime(base, 160.0) == 60.0
    assert uptime(stopped, 500.0) == 30.0 and uptime(gone, 500.0) == 20.0
    assert process_dict(stopped, 500.0)["uptime"] == 30.0
