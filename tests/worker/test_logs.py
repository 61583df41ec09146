"""Structured log lines (``offload.logs``), as workers write them."""

from __future__ import annotations

import io

from offload import logs


def test_line_starts_with_time_level_and_event_and_skips_none() -> None:
    line = logs.format_line(
        "info", "job.succeeded", {"job": "j1", "attempt": 1, "reason": None}, now=1.5
    )

    assert line == "ts=1970-01-01T00:00:01.500Z level=info event=job.succeeded job=j1 attempt=1"


def test_values_with_spaces_quotes_or_equals_are_quoted() -> None:
    line = logs.format_line("warning", "e", {"reason": 'a "b"=c', "ok": True, "ms": 2.5}, now=0)

    assert line.endswith(' reason="a \\"b\\"=c" ok=true ms=2.5')


def test_log_writes_to_the_configured_stream() -> None:
    stream = io.StringIO()
    logs.configure(stream=stream)
    try:
        logs.log("worker.started", pid=42)
    finally:
        logs.configure()

    assert " level=info event=worker.started pid=42\n" in stream.getvalue()
