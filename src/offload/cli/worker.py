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
_services_option = click.option(
    "--services",
    help="comma-separated services to host (default: every one the app registers; 'none' for none)",
)
_service_bind = click.option(
    "--service-bind",
    help="services listen on TCP at HOST[:PORT] instead of a Unix socket (a non-loopback "
    "HOST needs OFFLOAD_SECRET)",
)


def _service_names(value: str | None) -> list[str] | None:
    """The names ``--services`` gives: None when left out, [] for ``none``."""
    if value is None:
        return None
    if value.strip() == "none":
        return []
    from offload.services.protocol import check_name

    try:
        return [check_name(n.strip()) for n in value.split(",") if n.strip()]
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--services") from exc


def _apply_bind(app: Offload, bind: str | None) -> None:
    """``--service-bind``: the app's ``service_bind`` setting, checked now."""
    if bind is None:
        return
    try:
        app.settings = app.settings.replace(service_bind=bind)
        from offload.services.host import check_bind

        check_bind(app.settings)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--service-bind") from exc


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
@_services_option
@_service_bind
@_no_schedules
@_started_by_fd
@handle_errors
def worker(
    app: Offload,
    concurrency: int | None,
    queues: str | None,
    log_file: str | None,
    services: str | None,
    service_bind: str | None,
    no_schedules: bool,
    started_by_fd: int | None,
) -> None:
    """Run a supervisor and child processes until SIGTERM (graceful) or SIGINT (fast).

    The supervisor also hosts the app's services (each in a process of its own), all of
    them unless --services names some, and fires the app's periodic schedules (each fire
    becomes one job, however many workers fire it) unless --no-schedules is given.
    """
    from offload.worker import run_worker  # loaded by the commands that run jobs only

    names = _service_names(services)
    _apply_bind(app, service_bind)
    logs.configure(log_file)
    run_worker(
        app, concurrency=concurrency, queues=_queues(queues),
        started_by_fd=_open_fd(started_by_fd), services=names, schedules=not no_schedules,
    )  # fmt: skip


@click.command()
@required_app_options
@click.argument("names", nargs=-1)
@click.option(
    "--concurrency", "-c", type=click.IntRange(min=1), default=1, show_default=True,
    help="child processes delivering sends stored while a service was down",
)  # fmt: skip
@_log_file
@_service_bind
@handle_errors
def service(
    app: Offload,
    names: tuple[str, ...],
    concurrency: int,
    log_file: str | None,
    service_bind: str | None,
) -> None:
    """Run services alone (NAMES, default: every one the app registers) until SIGTERM.

    Each service runs in a process of its own under one supervisor, which restarts it
    when it dies; a small pool delivers the sends stored while it was down.
    """
    from offload.services.host import select
    from offload.worker import run_services

    chosen = _service_names(",".join(names)) if names else None
    try:
        select(app, chosen)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="NAMES") from exc
    _apply_bind(app, service_bind)
    logs.configure(log_file)
    run_services(app, chosen, concurrency=concurrency)


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
