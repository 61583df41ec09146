"""Structured log lines, one event per line, in logfmt::

    ts=2026-11-23T19:30:00.123Z level=info event=job.succeeded job=0193... task=app.send
    attempt=1 duration_ms=12

Workers and drains write them to stderr or to ``--log-file``. Plain ``key=value`` pairs
keep every line greppable and parseable by log shippers without a JSON dependency; values
with spaces, quotes or ``=`` are quoted with backslash escapes.

>>> from offload import logs
>>> logs.format_line("info", "job.started", {"job": "abc", "attempt": 1}, now=0.0)
'ts=1970-01-01T00:00:00.000Z level=info event=job.started job=abc attempt=1'
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any

_lock = threading.Lock()
_stream: IO[str] | None = None
_owned = False


def configure(path: str | None = None, stream: IO[str] | None = None) -> None:
    """Send log lines to the file at ``path`` (appended), to ``stream``, or to stderr.

    >>> configure()                       # stderr, the default
    """
    global _stream, _owned
    with _lock:
        if _owned and _stream is not None:
            _stream.close()
        _owned = path is not None
        if path is not None:
            # Line buffered: a worker killed with SIGKILL loses no finished line.
            _stream = open(path, "a", buffering=1, encoding="utf-8")
        else:
            _stream = stream


def log(event: str, level: str = "info", **fields: Any) -> None:
    """Write one line: ``log("job.succeeded", job=job_id, task=name, duration_ms=12)``.

    Fields whose value is None are left out. Never raises: a log line that cannot be
    written must not stop a worker.
    """
    line = format_line(level, event, fields)
    try:
        with _lock:
            stream = _stream or sys.stderr
            stream.write(line + "\n")
            stream.flush()
    except (OSError, ValueError):
        pass  # closed or full stream: losing a log line beats losing the worker


def format_line(level: str, event: str, fields: dict[str, Any], now: float | None = None) -> str:
    """One logfmt line with ``ts``, ``level`` and ``event`` first."""
    ts = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
    parts = [f"ts={stamp}", f"level={level}", f"event={event}"]
    parts.extend(f"{key}={_value(value)}" for key, value in fields.items() if value is not None)
    return " ".join(parts)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
        return text or "0"
    text = str(value)
    if text and not any(c in text for c in ' "=\\\n\t'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
