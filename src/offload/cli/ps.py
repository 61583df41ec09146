"""``offload ps``: the process table (supervisors, their children, drains)."""

from __future__ import annotations

import dataclasses
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from offload.app import Offload
from offload.cli.common import app_options, handle_errors
from offload.cli.render import (
    PROCESS_STYLES,
    cell,
    decode,
    human_duration,
    human_size,
    json_line,
    make_console,
)
from offload.types import ProcessInfo

#: Seconds a stopped process stays listed without ``--all``.
STOPPED_SHOWN = 300.0
#: A process is ``gone`` after this many heartbeat intervals without one.
GONE_AFTER_BEATS = 3
#: Terminal width from which the QUEUES column is shown.
WIDE = 140


@click.command()
@app_options
@click.option("--all", "show_all", is_flag=True, help="Also list processes stopped long ago.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for scripts.")
@handle_errors
def ps(app: Offload, show_all: bool, as_json: bool) -> None:
    """List the processes working on this store.

    STATUS is running, gone (no heartbeat for three heartbeat intervals: the process or
    its machine died) or stopped (it exited cleanly). Stopped processes are hidden after
    five minutes unless --all is given.
    """
    store = app.store
    rows = store.process_list(gone_after=GONE_AFTER_BEATS * app.settings.heartbeat)
    now = store.now()
    rows = with_own_heartbeats(rows, now)
    if not show_all:
        rows = [p for p in rows if not _stopped_long_ago(p, now)]
    rows = tree_order(rows)
    if as_json:
        for p in rows:
            click.echo(json_line(process_json(p, now)))
        return
    console = make_console()
    if not rows:
        console.print("no processes" + ("" if show_all else " (--all lists stopped ones)"))
        return
    console.print(process_table(rows, now, queues=console.width >= WIDE))


def with_own_heartbeats(rows: list[ProcessInfo], now: float) -> list[ProcessInfo]:
    """Judge running/gone by each process's own heartbeat interval when it published one
    (``info["heartbeat"]``, on its row or its parent's), not by this command's setting:
    a worker configured with a 30 s heartbeat is not gone after 15 s."""
    beats = {p.id: _heartbeat_of(p) for p in rows}
    out = []
    for p in rows:
        beat = beats[p.id] or beats.get(p.parent_id or "")
        if p.status == "stopped" or not beat:
            out.append(p)
            continue
        status = "gone" if now - p.heartbeat_at > GONE_AFTER_BEATS * beat else "running"
        out.append(dataclasses.replace(p, status=status))
    return out


def _heartbeat_of(p: ProcessInfo) -> float | None:
    info = decode(p.info)
    beat = info.get("heartbeat") if isinstance(info, dict) else None
    if isinstance(beat, int | float) and not isinstance(beat, bool) and beat > 0:
        return float(beat)
    return None


def _stopped_long_ago(p: ProcessInfo, now: float) -> bool:
    return p.status == "stopped" and p.stopped_at is not None and now - p.stopped_at > STOPPED_SHOWN


def tree_order(rows: list[ProcessInfo]) -> list[ProcessInfo]:
    """Each process followed by its children (rows are in start order already)."""
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


def uptime(p: ProcessInfo, now: float) -> float:
    """Seconds the process has lived: until it stopped, or until its last heartbeat."""
    if p.status == "stopped" and p.stopped_at is not None:
        end = p.stopped_at
    elif p.status == "gone":
        end = p.heartbeat_at
    else:
        end = now
    return max(0.0, end - p.started_at)


def status_text(p: ProcessInfo, now: float) -> Text:
    label = p.status
    if p.status == "gone":
        label = f"gone, seen {human_duration(now - p.heartbeat_at)} ago"
    elif p.status == "stopped" and p.stopped_at is not None:
        label = f"stopped {human_duration(now - p.stopped_at)} ago"
    return Text(label, style=PROCESS_STYLES.get(p.status, ""))


def process_table(rows: list[ProcessInfo], now: float, *, queues: bool = True) -> Table:
    """The process table; ``queues`` False leaves out the QUEUES column (narrow screens)."""
    pids = {p.id: p.pid for p in rows}
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("KIND", no_wrap=True, min_width=10)
    table.add_column("HOST", overflow="fold")
    table.add_column("PID", justify="right", no_wrap=True)
    table.add_column("STATUS", min_width=7)
    for name in ("UPTIME", "SERVED", "FAILED"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("CURRENT JOB", overflow="fold")
    table.add_column("RSS", justify="right", no_wrap=True)
    table.add_column("PEAK RSS", justify="right", no_wrap=True)
    table.add_column("PARENT", overflow="fold")
    if queues:
        table.add_column("QUEUES", overflow="fold")
    for p in rows:
        is_child = p.parent_id is not None and p.parent_id in pids
        parent = pids.get(p.parent_id or "", p.parent_id)
        row = [
            cell(("└ " if is_child else "") + p.kind),
            cell(p.host),
            cell(p.pid),
            status_text(p, now),
            cell(human_duration(uptime(p, now))),
            cell(p.served),
            cell(p.failed or "", "red" if p.failed else ""),
            cell(p.current_job),
            cell(human_size(p.rss)),
            cell(human_size(p.peak_rss)),
            cell(parent),
        ]
        if queues:
            row.append(cell(p.queues))
        table.add_row(*row)
    return table


def process_json(p: ProcessInfo, now: float) -> dict[str, Any]:
    """A process row for ``--json``: every stored field plus ``uptime`` seconds."""
    data = dataclasses.asdict(p)
    data["info"] = decode(p.info)
    data["uptime"] = round(uptime(p, now), 3)
    return data
