"""Jobs, processes and schedules as plain data: one source for ``--json`` output,
``offload ps`` and ``offload schedules``, and what reads the store for people next (the
dashboard, metrics).

Everything here is a pure function of rows read from the store: dicts of str, numbers,
None, lists and dicts, ready for ``json.dumps``. JSON payloads stored as text (arguments,
results, options, saved data, errors, process info) are decoded; text that is not JSON is
kept as the string it is. A process's running/gone/stopped status is decided by the store
with :func:`offload.store.rules.process_statuses`, never here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from offload.errors import SerializationError
from offload.serialization import loads
from offload.types import FireRecord, GroupRow, JobEvent, JobMessage, JobRow, ProcessInfo

if TYPE_CHECKING:
    from offload.scheduling.periodic import Periodic

_PAYLOADS = ("args", "kwargs", "options", "result", "error", "saved")


def decode(text: str | None) -> Any:
    """Stored JSON text as a value; text that is not JSON is returned unchanged."""
    if text is None:
        return None
    try:
        return loads(text)
    except SerializationError:  # also NaN, Infinity and 1e400, which JSON output refuses
        return text


def job_dict(row: JobRow) -> dict[str, Any]:
    """A job: every stored field, the state as its name, JSON payloads decoded and
    ``progress.percent`` added."""
    data = dataclasses.asdict(row)
    data["state"] = row.state.value
    data["progress"]["percent"] = row.progress.percent
    for key in _PAYLOADS:
        data[key] = decode(data[key])
    return data


def group_dict(row: GroupRow) -> dict[str, Any]:
    """A group: every stored field, the state as its name, and ``done``."""
    data = dataclasses.asdict(row)
    data["state"] = row.state.value
    data["done"] = row.done
    return data


def job_detail(
    row: JobRow, events: Sequence[JobEvent], messages: Sequence[JobMessage]
) -> dict[str, Any]:
    """A job with its history and its messages."""
    data = job_dict(row)
    data["events"] = [dataclasses.asdict(e) for e in events]
    data["messages"] = [dataclasses.asdict(m) for m in messages]
    return data


def uptime(p: ProcessInfo, now: float) -> float:
    """Seconds the process has lived: until it stopped, or until its last heartbeat."""
    if p.status == "stopped" and p.stopped_at is not None:
        end = p.stopped_at
    elif p.status == "gone":
        end = p.heartbeat_at
    else:
        end = now
    return max(0.0, end - p.started_at)


def process_dict(p: ProcessInfo, now: float) -> dict[str, Any]:
    """A process row: every stored field, ``info`` decoded, plus ``uptime`` seconds."""
    data = dataclasses.asdict(p)
    data["info"] = decode(p.info)
    data["uptime"] = round(uptime(p, now), 3)
    return data


def service_of(p: ProcessInfo) -> tuple[str, str] | None:
    """``(name, address)`` of a service's row (as its ``info`` says; anything not text
    becomes ``""``), None for a row of another kind."""
    if p.kind != "service":
        return None
    info = decode(p.info)
    if not isinstance(info, dict):
        return "", ""
    name, address = info.get("service"), info.get("address")
    return (name if isinstance(name, str) else "", address if isinstance(address, str) else "")


def stopped_long_ago(p: ProcessInfo, now: float, shown: float) -> bool:
    """The process stopped more than ``shown`` seconds ago (listings hide it by default)."""
    return p.status == "stopped" and p.stopped_at is not None and now - p.stopped_at > shown


def service_list(
    rows: Sequence[ProcessInfo], registered: Iterable[str], now: float
) -> list[dict[str, Any]]:
    """Every service instance of the process table, by name, then in start order: the
    process row (as :func:`process_dict`) with the service's ``name`` and ``address``
    and ``registered`` (the app declares that name); plus, for each registered service
    that has no running instance, an entry of ``status`` ``down`` (its process fields
    None)."""
    declared = set(registered)
    out: list[dict[str, Any]] = []
    running: set[str] = set()
    for p in rows:
        found = service_of(p)
        if found is None:
            continue
        data = process_dict(p, now)
        data["name"], data["address"] = found
        data["registered"] = found[0] in declared
        if p.status == "running":
            running.add(found[0])
        out.append(data)
    for name in sorted(declared - running):
        out.append({
            "name": name, "address": None, "registered": True, "status": "down", "id": None,
            "host": None, "pid": None, "uptime": None, "served": None, "failed": None,
            "rss": None, "peak_rss": None, "started_at": None, "heartbeat_at": None,
            "stopped_at": None,
        })  # fmt: skip
    out.sort(key=lambda s: s["name"])  # stable: instances stay in start order
    return out


def tree_order(rows: Sequence[ProcessInfo]) -> list[ProcessInfo]:
    """Each process followed by its children (rows come in start order already)."""
    ids = {p.id for p in rows}
    children: dict[str, list[ProcessInfo]] = {}
    roots = []
    for p in rows:
        if p.parent_id and p.parent_id in ids and p.parent_id != p.id:
            children.setdefault(p.parent_id, []).append(p)
        else:
            roots.append(p)
    out: list[ProcessInfo] = []
    seen: set[str] = set()

    def visit(p: ProcessInfo) -> None:
        if p.id in seen:
            return
        seen.add(p.id)
        out.append(p)
        for child in children.get(p.id, []):
            visit(child)

    for p in roots:
        visit(p)
    for p in rows:  # a parent cycle has no root; list what is left as it came
        visit(p)
    return out


def schedule_list(
    declared: Mapping[str, Periodic], last: Mapping[str, FireRecord], now: float
) -> list[dict[str, Any]]:
    """Every schedule the app declares or the store has fires of (``last``, as
    ``schedule_last_fires()`` returns it), by name, each as :func:`schedule_dict`."""
    names = sorted({*declared, *last})
    return [schedule_dict(n, declared.get(n), last.get(n), now) for n in names]


def schedule_dict(
    name: str, schedule: Periodic | None, last: FireRecord | None, now: float
) -> dict[str, Any]:
    """A schedule: how it is declared (None fields for one the store knows of but the app
    does not declare), its last recorded fire and job, its next fire time after ``now``,
    and ``overdue``: fires fell due since the last one that no scheduler recorded (no
    worker or drain ran; the next one catches up by the schedule's policy)."""
    data: dict[str, Any] = {
        "name": name, "in_app": schedule is not None, "task": None, "expression": None,
        "timezone": None, "description": None, "catch_up": None, "catch_up_limit": None,
        "args": None, "kwargs": None,
    }  # fmt: skip
    next_at: int | None = None
    overdue = False
    if schedule is not None:
        spec = schedule.spec
        data.update(
            task=schedule.task.name, expression=spec.expression(),
            timezone=getattr(spec, "tz", None), description=spec.describe(),
            catch_up=schedule.catch_up,
            catch_up_limit=schedule.catch_up_limit if schedule.catch_up == "all" else None,
            args=list(schedule.args), kwargs=dict(schedule.kwargs),
        )  # fmt: skip
        next_at = spec.next_after(int(now))
        if last is not None:
            after_last = spec.next_after(last.fire_at)
            overdue = after_last is not None and after_last < int(now)
    data.update(
        last_fire_at=last.fire_at if last else None,
        last_job=last.job_id if last else None,
        last_recorded_at=last.recorded_at if last else None,
        next_fire_at=next_at,
        overdue=overdue,
    )
    return data
