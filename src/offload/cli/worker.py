"""``offload worker`` and ``offload drain``."""

from __future__ import annotations

import click

from offload import logs
from offload.app import Offload
from offload.cli.common import handle_errors, required_app_options
from offload.errors import ConfigError
from offload.settings import check_identifier


def _queues(value: str | None) -> list[str] | None:
    if not value:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    try:
        return [check_identifier("queue", name) for name in names]
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--queues") from exc


_concurrency = click.option(
    "--concurrency", "-c", type=click.IntRange(min=1), help="child processes (default: CPUs)"
)
_queues_option = click.option(
    "--queues", "-q", help="comma-separated queues (default: those of the app's tasks)"
)
_log_file = click.option(
    "--log-file", type=click.Path(dir_okay=False), help="append log lines here, not stderr"
)
_no_schedules = click.option(
    "--no-schedules",
    is_flag=True,
    help="do not fire the app's periodic schedules (other workers do)",
)
# Given by a starter (autostart, `offload ensure`): its lock, held until this one serves.
_started_by_fd = click.option("--started-by-fd", type=click.IntRange(min=3), hidden=True)


def _open_fd(fd: int | None) -> int | None:
    if fd is None:
        return None
    import os

    try:
        os.fstat(fd)
    except OSError:
        raise click.BadParameter(
            f"descriptor {fd} is not open", param_hint="--started-by-fd"
        ) from None
    return fd


@click.command()
@required_app_options
@_concurrency
@_queues_option
@_log_file
@_no_schedules
@_started_by_fd
@handle_errors
def worker(
    app: Offload,
    concurrency: int | None,
    queues: str | None,
    log_file: str | None,
    no_schedules: bool,
    started_by_fd: int | None,
) -> None:
    """Run a supervisor and child processes until SIGTERM (graceful) or SIGINT (fast).

    It also fires the app's periodic schedules (each fire becomes one job, however many
    workers fire it), unless --no-schedules is given.
    """
    from offload.worker import run_worker  # loaded by the commands that run jobs only

    logs.configure(log_file)
    run_worker(
        app, concurrency=concurrency, queues=_queues(queues),
        started_by_fd=_open_fd(started_by_fd), schedules=not no_schedules,
    )  # fmt: skip


@click.command()
@required_app_options
@_concurrency
@_queues_option
@_log_file
@click.option(
    "--budget",
    "--max-time",
    "budget",
    type=click.FloatRange(min=0, min_open=True),
    help="stop claiming after this many seconds",
)
@click.option("--max-jobs", type=click.IntRange(min=1), help="stop after claiming this many")
@click.option(
    "--idle-exit",
    type=click.FloatRange(min=0, min_open=True),
    help="stay until nothing ran for this many seconds (default: exit once empty)",
)
@_no_schedules
@_started_by_fd
@handle_errors
def drain(
    app: Offload,
    concurrency: int | None,
    queues: str | None,
    log_file: str | None,
    budget: float | None,
    max_jobs: int | None,
    idle_exit: float | None,
    no_schedules: bool,
    started_by_fd: int | None,
) -> None:
    """Run due jobs until the queues are empty or the budget is spent (for cron).

    Only one drain of a queue set runs at a time; a second exits 0 at once. Periodic
    schedules that are due are fired first (unless --no-schedules), so their jobs run in
    this drain.
    """
    from offload.worker import run_drain

    logs.configure(log_file)
    summary = run_drain(
        app, queues=_queues(queues), budget=budget, max_jobs=max_jobs, concurrency=concurrency,
        idle_exit=idle_exit, started_by_fd=_open_fd(started_by_fd),
        schedules=not no_schedules,
    )  # fmt: skip
    click.echo(summary.line())
