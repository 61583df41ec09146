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


@click.command()
@required_app_options
@_concurrency
@_queues_option
@_log_file
@handle_errors
def worker(app: Offload, concurrency: int | None, queues: str | None, log_file: str | None) -> None:
    """Run a supervisor and child processes until SIGTERM (graceful) or SIGINT (fast)."""
    from offload.worker import run_worker  # loaded by the commands that run jobs only

    logs.configure(log_file)
    run_worker(app, concurrency=concurrency, queues=_queues(queues))


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
@handle_errors
def drain(
    app: Offload,
    concurrency: int | None,
    queues: str | None,
    log_file: str | None,
    budget: float | None,
    max_jobs: int | None,
) -> None:
    """Run due jobs until the queues are empty or the budget is spent (for cron).

    Only one drain of a queue set runs at a time; a second exits 0 at once.
    """
    from offload.worker import run_drain

    logs.configure(log_file)
    summary = run_drain(
        app, queues=_queues(queues), budget=budget, max_jobs=max_jobs, concurrency=concurrency
    )
    click.echo(summary.line())
