"""``offload jobs ...`` (list, show, retry, cancel, delete, counts) and ``offload enqueue``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from offload.app import Offload
from offload.cli.common import EXIT_FAILED, app_options, handle_errors
from offload.cli.render import (
    block,
    cell,
    human_duration,
    json_line,
    make_console,
    percent,
    pretty_json,
    state_text,
    timestamp,
)
from offload.errors import SerializationError
from offload.jobs import Job, caller
from offload.serialization import loads
from offload.store.rules import GONE_AFTER_BEATS
from offload.types import JobEvent, JobFilter, JobMessage, JobRow, JobState
from offload.views import decode, job_detail, job_dict

STATES = [s.value for s in JobState]


@click.group()
def jobs() -> None:
    """Inspect and manage jobs: list, show, retry, cancel, delete, counts."""


# -- list -----------------------------------------------------------------------------------
@jobs.command("list")
@app_options
@click.option("--state", type=click.Choice(STATES), help="Only jobs in this state.")
@click.option("--queue", metavar="QUEUE", help="Only jobs of this queue.")
@click.option("--task", metavar="NAME", help="Only jobs of this task (its full name).")
@click.option(
    "--limit", type=click.IntRange(1, 10_000), metavar="N", default=50, show_default=True,
    help="At most this many jobs.",
)  # fmt: skip
@click.option("--before", "before_id", metavar="ID", help="Only jobs older than this id (paging).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for scripts.")
@handle_errors
def list_jobs(
    app: Offload,
    state: str | None,
    queue: str | None,
    task: str | None,
    limit: int,
    before_id: str | None,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    store = app.store
    records = store.job_list(
        JobFilter(
            state=JobState(state) if state else None, queue=queue, task=task, limit=limit,
            before_id=before_id,
        )
    )  # fmt: skip
    if as_json:
        for record in records:
            click.echo(json_line(job_dict(record)))
        return
    console = make_console()
    if not records:
        console.print("no jobs")
        return
    console.print(jobs_table(records, store.now(), console.width))
    if len(records) == limit:
        console.print(f"more may follow: --before {records[-1].id}", style="dim")


#: Terminal widths from which the PROGRESS, MESSAGE and CREATED columns are shown.
PROGRESS_WIDTH, MESSAGE_WIDTH, CREATED_WIDTH = 100, 120, 150


def jobs_table(records: Sequence[JobRow], now: float, width: int = CREATED_WIDTH) -> Table:
    """The jobs table. A narrower ``width`` leaves out the creation time, the message, then
    the progress, so that ids (to copy into other commands) and states show in full."""
    progress, message = width >= PROGRESS_WIDTH, width >= MESSAGE_WIDTH
    created = width >= CREATED_WIDTH
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("ID", no_wrap=True, min_width=36)
    table.add_column("TASK", overflow="fold")
    table.add_column("QUEUE", overflow="fold")
    table.add_column("STATE", no_wrap=True, min_width=11)
    table.add_column("ATTEMPTS", justify="right", no_wrap=True)
    if progress:
        table.add_column("PROGRESS", justify="right", no_wrap=True)
    if message:
        table.add_column("MESSAGE", overflow="ellipsis", max_width=40, no_wrap=True)
    if created:
        table.add_column("CREATED (UTC)", no_wrap=True)
    table.add_column("AGE", justify="right", no_wrap=True)
    for r in records:
        row = [
            cell(r.id),
            cell(r.task),
            cell(r.queue),
            state_text(r.state),
            cell(r.attempt),
        ]
        if progress:
            row.append(cell(percent(r.progress.current, r.progress.total)))
        if message:
            row.append(cell(r.progress.message))
        if created:
            row.append(cell(timestamp(r.created_at)))
        row.append(cell(human_duration(now - r.created_at)))
        table.add_row(*row)
    return table


# -- show -----------------------------------------------------------------------------------
@jobs.command("show", short_help="Show one job in full.")
@app_options
@click.argument("job_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="The job, its history and messages as JSON.")
@handle_errors
def show(app: Offload, job_id: str, as_json: bool) -> None:
    """Show one job: fields, progress, history, messages, saved data, result, error."""
    job = app.get_job(job_id)
    events, messages = job.events(), job.messages()
    if as_json:
        data = job_detail(job.record, events, messages)
        click.echo(pretty_json(data))
        return
    console = make_console()
    note = unserved_note(app, job.record)
    render_job(console, job, events, messages, app.store.now(), note=note)


def unserved_note(app: Offload, r: JobRow) -> str | None:
    """For a job waiting to run: a warning when no live worker registers its task (it
    would wait for ever without a word); None otherwise."""
    if r.state not in (JobState.QUEUED, JobState.SCHEDULED):
        return None
    live = app.store.process_tasks_live(gone_after=GONE_AFTER_BEATS * app.settings.heartbeat)
    if r.task in live:
        return None
    return (
        f"no live worker registers task {r.task}: the job waits until a worker whose app "
        "registers it starts (see `offload ps`)"
    )


def render_job(
    console: Console,
    job: Job[Any],
    events: list[JobEvent],
    messages: list[JobMessage],
    now: float,
    *,
    note: str | None = None,
) -> None:
    r = job.record
    console.print(
        Panel(fields_table(r, now), title=cell(f"job {r.id}"), title_align="left", expand=False)
    )
    if note:
        console.print(cell(note, style="bold yellow"))
    if r.progress.total or r.progress.current or r.progress.message:
        console.print(progress_line(r))
    if events:
        console.print(Text("History", style="bold"))
        console.print(events_table(events))
    if messages:
        console.print(Text("Messages", style="bold"))
        console.print(messages_table(messages))
    saved = decode(r.saved)
    if saved:
        console.print(Text("Saved data", style="bold"))
        console.print(block(pretty_json(saved)))
    if r.state is JobState.SUCCEEDED:
        console.print(Text("Result", style="bold"))
        console.print(block(pretty_json(decode(r.result))))
    error = job.error
    if error:
        title = "Error" if r.state in (JobState.FAILED, JobState.QUARANTINED) else "Last error"
        console.print(Text(title, style="bold red"))
        console.print(cell(f"{error.get('type', 'Error')}: {error.get('message', '')}"))
        if error.get("traceback"):
            console.print(block(str(error["traceback"]).rstrip("\n"), style="dim"))


def fields_table(r: JobRow, now: float) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    attempts = (
        f"{r.attempt} started; errors {r.errors} (fails at {r.max_attempts}); crashes {r.crashes}"
    )
    age = human_duration(now - r.created_at)
    rows: list[tuple[str, Text]] = [
        ("task", cell(r.task)),
        ("queue", cell(r.queue)),
        ("state", state_text(r.state)),
        ("priority", cell(r.priority)),
        ("attempts", cell(attempts)),
        ("args", cell(r.args)),
        ("kwargs", cell(r.kwargs)),
        ("created", cell(f"{timestamp(r.created_at)} UTC ({age} ago)")),
        ("run at", cell(f"{timestamp(r.run_at)} UTC" + _relative(r.run_at, now))),
    ]
    optional: list[tuple[str, object]] = [
        ("started", r.started_at and f"{timestamp(r.started_at)} UTC"),
        ("finished", r.finished_at and f"{timestamp(r.finished_at)} UTC"),
        ("lease until", r.leased_until and f"{timestamp(r.leased_until)} UTC"),
        ("worker", r.worker_id),
        ("timeout", r.timeout and f"{r.timeout:g} s"),
        ("unique key", r.unique_key),
        ("limit", r.limit_key and f"{r.limit_max} at once under {r.limit_key}"),
        ("cancel", "requested" if r.cancel_requested and not r.state.finished else None),
    ]
    rows += [(name, cell(value)) for name, value in optional if value]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _relative(ts: float, now: float) -> str:
    if ts > now:
        return f" (in {human_duration(ts - now)})"
    return ""


def progress_line(r: JobRow) -> Table:
    p = r.progress
    grid = Table.grid(padding=(0, 1))
    if p.total:
        grid.add_row(
            ProgressBar(total=p.total, completed=min(p.current, p.total), width=40),
            cell(f"{percent(p.current, p.total)} ({p.current:g}/{p.total:g})"),
            cell(p.message),
        )
    else:
        grid.add_row(cell(f"progress {p.current:g}"), cell(p.message))
    return grid


def events_table(events: list[JobEvent]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("AT (UTC)", "ATTEMPT", "EVENT", "WORKER", "DETAIL"):
        table.add_column(name, no_wrap=name != "DETAIL", overflow="fold")
    for e in events:
        table.add_row(
            cell(timestamp(e.at)), cell(e.attempt), cell(e.kind), cell(e.worker_id),
            cell(e.message),
        )  # fmt: skip
    return table


def messages_table(messages: list[JobMessage]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("AT (UTC)", no_wrap=True)
    table.add_column("ATTEMPT", no_wrap=True)
    table.add_column("TEXT", overflow="fold")
    for m in messages:
        table.add_row(cell(timestamp(m.at)), cell(m.attempt), cell(m.text))
    return table


# -- retry, cancel, delete -----------------------------------------------------------------
def unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def report(lines: list[tuple[str, bool]]) -> None:
    """Print one line per id; exit 1 if any of them was refused."""
    for text, ok in lines:
        click.echo(text, err=not ok)
    if not all(ok for _, ok in lines):
        sys.exit(EXIT_FAILED)


def refusal(app: Offload, job_id: str, why: Callable[[JobRow], str]) -> tuple[str, bool]:
    record = app.store.job_get(job_id)
    if record is None:
        return f"{job_id}: no job with id {job_id!r}", False
    return f"{job_id}: {why(record)}", False


@jobs.command(short_help="Run finished jobs again.")
@app_options
@click.argument("job_ids", metavar="ID...", nargs=-1, required=True)
@handle_errors
def retry(app: Offload, job_ids: tuple[str, ...]) -> None:
    """Run finished jobs again now (failed, quarantined, cancelled or succeeded)."""
    ids = unique(job_ids)
    done = set(app.store.job_retry(ids))

    def why(r: JobRow) -> str:
        if r.state.finished:
            return "not retried: another job with the same unique key is waiting or running"
        return f"not retried: the job is {r.state.value} (only finished jobs can be retried)"

    report([(f"{i}: queued again", True) if i in done else refusal(app, i, why) for i in ids])


@jobs.command(short_help="Cancel waiting jobs, ask running ones to stop.")
@app_options
@click.argument("job_ids", metavar="ID...", nargs=-1, required=True)
@handle_errors
def cancel(app: Offload, job_ids: tuple[str, ...]) -> None:
    """Cancel jobs: a waiting job is cancelled at once, a running job is asked to stop."""
    ids = unique(job_ids)
    states = app.store.job_cancel(ids, by=f"offload jobs cancel, {caller()}")
    lines = []
    for job_id in ids:
        state = states.get(job_id)
        if state is None:
            lines.append((f"{job_id}: no job with id {job_id!r}", False))
        elif state is JobState.CANCELLED:
            lines.append((f"{job_id}: cancelled", True))
        elif state is JobState.RUNNING:
            lines.append((f"{job_id}: running; asked to stop", True))
        else:
            lines.append((f"{job_id}: not cancelled: the job has finished ({state.value})", False))
    report(lines)


@jobs.command(short_help="Delete jobs that are not running.")
@app_options
@click.argument("job_ids", metavar="ID...", nargs=-1, required=True)
@handle_errors
def delete(app: Offload, job_ids: tuple[str, ...]) -> None:
    """Delete jobs with their history and messages (running jobs are refused)."""
    ids = unique(job_ids)
    done = set(app.store.job_delete(ids))

    def why(r: JobRow) -> str:
        return f"not deleted: the job is {r.state.value} (cancel it first)"

    report([(f"{i}: deleted", True) if i in done else refusal(app, i, why) for i in ids])


# -- counts ---------------------------------------------------------------------------------
@jobs.command()
@app_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object: queue -> state -> n.")
@click.option(
    "--recount",
    is_flag=True,
    help="First rebuild the counts the store keeps from its jobs (needed only after jobs "
    "were written in a way the store does not count; reads every job).",
)
@handle_errors
def counts(app: Offload, as_json: bool, recount: bool) -> None:
    """Number of jobs per queue and state."""
    if recount:
        app.store.job_recount()
    by_queue: dict[str, dict[str, int]] = {}
    for (queue, state), n in sorted(app.store.job_counts().items()):
        by_queue.setdefault(queue, {})[state] = n
    if as_json:
        click.echo(json_line(by_queue))
        return
    console = make_console()
    if not by_queue:
        console.print("no jobs")
        return
    console.print(counts_table(by_queue))


def counts_table(by_queue: dict[str, dict[str, int]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_footer=True)
    totals = {s: sum(q.get(s, 0) for q in by_queue.values()) for s in STATES}
    table.add_column("QUEUE", footer="total", no_wrap=True)
    for s in STATES:
        table.add_column(s.upper(), justify="right", footer=str(totals[s] or ""))
    table.add_column("TOTAL", justify="right", footer=str(sum(totals.values())))
    for queue, states in by_queue.items():
        values = [cell(states.get(s) or "") for s in STATES]
        table.add_row(cell(queue), *values, cell(sum(states.values())))
    return table


# -- enqueue --------------------------------------------------------------------------------
@click.command()
@app_options
@click.argument("task_name")
@click.option(
    "--args", "args_json", metavar="JSON", default="[]", help="Positional arguments, a JSON array."
)
@click.option(
    "--kwargs",
    "kwargs_json",
    metavar="JSON",
    default="{}",
    help="Keyword arguments, a JSON object.",
)
@click.option("--queue", metavar="QUEUE", help="Queue (default: the task's own, else 'default').")
@click.option(
    "--delay",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="SECONDS",
    help="Seconds to wait before it may run.",
)
@handle_errors
def enqueue(
    app: Offload,
    task_name: str,
    args_json: str,
    kwargs_json: str,
    queue: str | None,
    delay: float,
) -> None:
    """Enqueue a job of TASK_NAME and print its id.

    With --app, the task's own options (queue, retries, timeout, ...) apply. The task need
    not be registered in the app given here: the job then gets the default options (a
    warning says so) and waits until a worker whose app knows the task claims it.
    """
    args = parse_json("--args", args_json, list, "array")
    kwargs = parse_json("--kwargs", kwargs_json, dict, "object")
    if task_name not in app.tasks:
        where = "the app given" if app.tasks else "any app given here (no --app)"
        click.echo(
            f"warning: task {task_name!r} is not registered in {where}: the job gets queue "
            f"{queue or 'default'!r} and default options (3 retries, no timeout), not the "
            "task's own; pass --app module:attribute to use them",
            err=True,
        )
    try:
        job = app.enqueue_by_name(task_name, args, kwargs, queue=queue, delay=delay)
    except SerializationError as exc:
        raise click.UsageError(str(exc)) from None
    except TypeError as exc:  # the call does not bind to the task's parameters
        raise click.UsageError(str(exc)) from None
    click.echo(job.id)


def parse_json(option: str, text: str, kind: type, kind_name: str) -> Any:
    """Decode strict JSON of the expected kind, or exit 2 naming the option and problem."""

    try:
        value = loads(text)  # strict: no NaN or Infinity, nor numbers that overflow to them
    except SerializationError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
    if not isinstance(value, kind):
        raise click.BadParameter(
            f"expected a JSON {kind_name}, got {_json_kind(value)} {text!r}", param_hint=option
        )
    return value


def _json_kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
