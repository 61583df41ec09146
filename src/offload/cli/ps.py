"""``offload ps``: the process table (supervisors, their children and services, drains)."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from offload.app import Offload
from offload.cli.common import app_options, handle_errors
from offload.cli.render import (
    PROCESS_STYLES,
    cell,
    escape_controls,
    human_duration,
    human_size,
    json_line,
    make_console,
)
from offload.store.rules import GONE_AFTER_BEATS
from offload.types import ProcessInfo
from offload.views import process_dict, service_of, tree_order, uptime

#: Seconds a stopped process stays listed without ``--all``.
STOPPED_SHOWN = 300.0
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
    five minutes unless --all is given. A service's row shows its NAME and ADDRESS, with
    the requests it served and the errors it raised as SERVED and FAILED.
    """
    store = app.store
    rows = store.process_list(gone_after=GONE_AFTER_BEATS * app.settings.heartbeat)
    now = store.now()
    if not show_all:
        rows = [p for p in rows if not _stopped_long_ago(p, now)]
    rows = tree_order(rows)
    if as_json:
        for p in rows:
            click.echo(json_line(process_dict(p, now)))
        return
    console = make_console()
    # Which store this is: a worker started from another folder may use another file.
    console.print(Text(f"store: {escape_controls(store.location)}", style="dim"))
    if not rows:
        console.print("no processes" + ("" if show_all else " (--all lists stopped ones)"))
        return
    console.print(process_table(rows, now, queues=console.width >= WIDE))


def _stopped_long_ago(p: ProcessInfo, now: float) -> bool:
    return p.status == "stopped" and p.stopped_at is not None and now - p.stopped_at > STOPPED_SHOWN


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
    services = any(p.kind == "service" for p in rows)
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
    if services:
        table.add_column("NAME", overflow="fold")
        table.add_column("ADDRESS", overflow="fold")
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
        if services:
            name, address = service_of(p) or ("", "")
            row.extend([cell(name), cell(address)])
        if queues:
            row.append(cell(p.queues))
        table.add_row(*row)
    return table
