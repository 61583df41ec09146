"""``offload groups [list]``: groups newest first, with their progress;
``offload groups show ID``: one group."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from offload.app import Offload
from offload.cli.common import app_options, fail, handle_errors
from offload.cli.render import cell, human_duration, json_line, make_console, timestamp
from offload.types import GroupRow, GroupState
from offload.views import group_dict

GROUP_STYLES = {
    GroupState.OPEN: "blue",
    GroupState.SEALED: "yellow",
    GroupState.WAITING: "dim",
    GroupState.COMPLETE: "green",
}


@click.group(invoke_without_command=True)
@app_options
@click.pass_context
@handle_errors
def groups(ctx: click.Context, app: Offload) -> None:
    """Groups and their progress: list (what `offload groups` alone runs), show."""
    if ctx.invoked_subcommand is None:
        _list(app, limit=50, before_id=None, as_json=False)


@groups.command("list")
@app_options
@click.option(
    "--limit", type=click.IntRange(1, 10_000), metavar="N", default=50, show_default=True,
    help="At most this many groups.",
)  # fmt: skip
@click.option("--before", "before_id", metavar="ID", help="Only groups older than this id.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for scripts.")
@handle_errors
def list_groups(app: Offload, limit: int, before_id: str | None, as_json: bool) -> None:
    """List groups, newest first: STATE is open (members may be added), sealed (it
    completes when every member is final), waiting (a stage whose previous stage is not
    complete) or complete (its callback is stored). FAILED counts every member that did
    not succeed (failed, cancelled, quarantined)."""
    _list(app, limit=limit, before_id=before_id, as_json=as_json)


def _list(app: Offload, *, limit: int, before_id: str | None, as_json: bool) -> None:
    rows = app.store.group_list(limit=limit, before_id=before_id)
    if as_json:
        for row in rows:
            click.echo(json_line(group_dict(row)))
        return
    console = make_console()
    if not rows:
        console.print("no groups")
        return
    now = app.store.now()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("ID", "NAME", "STATE", "DONE", "SUCCEEDED", "FAILED", "AGE"):
        right = name in ("DONE", "SUCCEEDED", "FAILED", "AGE")
        table.add_column(name, justify="right" if right else "left", no_wrap=name != "NAME")
    for row in rows:
        table.add_row(
            cell(row.id), cell(row.name or ""), _state(row), cell(f"{row.done}/{row.total}"),
            cell(str(row.succeeded)), cell(str(row.failed), "red" if row.failed else ""),
            cell(human_duration(now - row.created_at)),
        )  # fmt: skip
    console.print(table)


@groups.command("show")
@app_options
@click.argument("group_id")
@click.option("--json", "as_json", is_flag=True, help="A JSON object, for scripts.")
@handle_errors
def show(app: Offload, group_id: str, as_json: bool) -> None:
    """One group: its counters, stage and callback."""
    row = app.store.group_get(group_id)
    if row is None:
        fail(f"no group with id {group_id!r}")
        return
    if as_json:
        click.echo(json_line(group_dict(row)))
        return
    console = make_console()
    lines = [
        ("id", row.id), ("name", row.name or ""), ("state", row.state.value),
        ("progress", f"{row.done}/{row.total} done"),
        ("succeeded", str(row.succeeded)), ("failed", str(row.failed)),
        ("created", timestamp(row.created_at)), ("completed", timestamp(row.completed_at)),
        ("after", row.after or ""), ("stop on failure", "yes" if row.stop_on_failure else "no"),
        ("stopped", "yes (the stage before it had failed members)" if row.stopped else "no"),
        ("callback", f"{row.callback_task} (job {row.callback_id})" if row.callback_task else ""),
    ]  # fmt: skip
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in lines:
        table.add_row(key, _state(row) if key == "state" else cell(value))
    console.print(table)


def _state(row: GroupRow) -> Text:
    return cell(row.state.value, GROUP_STYLES.get(row.state, ""))
