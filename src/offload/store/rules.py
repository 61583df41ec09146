"""What both stores must agree on, written once: column lists, texts, derived states.

Each backend builds its SQL from these, so a rule changed here changes on SQLite and
PostgreSQL together.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from offload.types import JobState, ProcessInfo

#: Columns that build a ClaimedJob, in field order (both backends select these).
CLAIM_COLUMNS = (
    "id, task, queue, args, kwargs, attempt, max_attempts, errors, crashes, timeout, options,"
    " priority"
)

#: Stored columns of a ProcessInfo, in field order (``status`` is computed on read).
PROCESS_COLUMNS = (
    "id, kind, host, pid, parent_id, queues, started_at, heartbeat_at, stopped_at, served,"
    " failed, current_job, rss, peak_rss, info"
)


def derived_state(stored: JobState, run_at: float, now: float) -> JobState:
    """The state a reader sees. ``scheduled`` is never stored: it is a ``queued`` job whose
    ``run_at`` is still ahead of the store's ``now``."""
    if stored is JobState.QUEUED and run_at > now:
        return JobState.SCHEDULED
    return stored


#: A process is ``gone`` after this many of its heartbeat intervals without a heartbeat.
GONE_AFTER_BEATS = 3


def process_statuses(
    rows: Sequence[ProcessInfo], now: float, gone_after: float
) -> list[ProcessInfo]:
    """``rows`` with ``status`` filled: ``stopped`` once stopped, ``gone`` after
    :data:`GONE_AFTER_BEATS` of the process's own heartbeat intervals without one, else
    ``running``.

    A process publishes its interval as ``info["heartbeat"]`` (a child is judged by its
    parent's), so a worker configured with a 30 s heartbeat is not gone after 15 s; a row
    with no published interval is gone after ``gone_after`` seconds.
    """
    beats = {p.id: _published_heartbeat(p.info) for p in rows}
    out = []
    for p in rows:
        if p.stopped_at is not None:
            status = "stopped"
        else:
            beat = beats[p.id] or beats.get(p.parent_id or "")
            limit = GONE_AFTER_BEATS * beat if beat else gone_after
            status = "gone" if now - p.heartbeat_at > limit else "running"
        out.append(p if p.status == status else dataclasses.replace(p, status=status))
    return out


def _published_heartbeat(info: str) -> float | None:
    try:
        value = json.loads(info) if info and info != "{}" else None
    except (ValueError, RecursionError):
        return None
    beat = value.get("heartbeat") if isinstance(value, dict) else None
    if isinstance(beat, int | float) and not isinstance(beat, bool) and 0 < beat < 1e9:
        return float(beat)
    return None
