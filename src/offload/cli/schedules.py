"""``offload schedules``: every periodic schedule of the app, its last and next fire
time, and a human reading of its expression."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table
from rich.text import Text

from offload.app import Offload
from offload.cli.common import app_options, handle_errors
from offload.cli.render import cell, escape_controls, human_duration, json_line, make_console
from offload.cli.render import timestamp as utc
from offload.views import schedule_list


@click.command()
@app_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for scripts.")
@handle_errors
def schedules(app: Offload, as_json: bool) -> None:
    """List periodic schedules: when each fired last, when it fires next, and what its
    expression means.

    Schedules are declared in code (@app.periodic), so give --app to see them all;
    without it only the schedules the store has fire records of are listed. Times are
    UTC. OVERDUE means fires fell due since the last one that no worker or drain
    recorded: the next one to run catches up by the schedule's catch-up policy.
    """
    store = app.store
    last = store.schedule_last_fires()
    now = store.now()
    rows = schedule_list(app.schedules, last, now)
    if as_json:
        for row in rows:
            click.echo(json_line(row))
        return
    console = make_console()
    console.print(Text(f"store: {escape_controls(store.location)}", style="dim"))
    if not rows:
        console.print("no schedules" + ("" if app.schedules else " (--app lists the app's)"))
        return
    console.print(schedule_table(rows, now))


def schedule_table(rows: list[dict[str, Any]], now: float) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("NAME", overflow="fold")
    table.add_column("SCHEDULE", overflow="fold")
    table.add_column("MEANING", overflow="fold")
    table.add_column("LAST FIRE", no_wrap=True)
    table.add_column("NEXT FIRE", no_wrap=True)
    table.add_column("CATCH-UP", no_wrap=True)
    table.add_column("TASK", overflow="fold")
    for row in rows:
        if not row["in_app"]:
            table.add_row(
                cell(row["name"]), cell("-"), cell("not declared by this app", "dim"),
                _when(row["last_fire_at"], now), cell(""), cell(""), cell(""),
            )  # fmt: skip
            continue
        catch_up = row["catch_up"]
        if row["catch_up_limit"] is not None:
            catch_up = f"{catch_up} ({row['catch_up_limit']})"
        last = _when(row["last_fire_at"], now)
        if row["overdue"]:
            last.append("  OVERDUE", style="bold red")
        table.add_row(
            cell(row["name"]), cell(row["expression"]), cell(row["description"]), last,
            _when(row["next_fire_at"], now), cell(catch_up), cell(row["task"]),
        )  # fmt: skip
    return table


def _when(at: int | None, now: float) -> Text:
    """``2026-12-01 15:00:00 (4m10s ago)`` or ``(in 4m10s)``; ``never`` for None."""
    if at is None:
        return Text("never", style="dim")
    delta = at - now
    ago = f"in {human_duration(delta)}" if delta >= 0 else f"{human_duration(-delta)} ago"
    return Text(f"{utc(at)} ({ago})")
