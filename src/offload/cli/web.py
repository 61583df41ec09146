"""``offload web``: the web application (dashboard, status endpoint, metrics) under uvicorn."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from offload.app import Offload
from offload.cli.common import EXIT_USAGE, app_options, handle_errors

DEFAULT_BIND = "127.0.0.1:8787"
PASSWORD_VARIABLE = "OFFLOAD_WEB_PASSWORD"
READ_ONLY_VARIABLE = "OFFLOAD_WEB_READ_ONLY_PASSWORD"


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8787`` for IPv6) as ``(host, port)``; ``click.BadParameter``
    naming the problem otherwise."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(
            f"expected HOST:PORT (e.g. 127.0.0.1:8787 or [::1]:8787), got {text!r}",
            param_hint="--bind",
        )
    if any(c.isspace() or c in "/@?#[]" for c in host) or len(host) > 253:
        raise click.BadParameter(f"{host!r} is not a host name or address", param_hint="--bind")
    return host, int(port)


def read_password(
    password_file: Path | None, variable: str = PASSWORD_VARIABLE, option: str = "--password-file"
) -> str | None:
    """The password from the file given to ``option`` (its first line), else from the
    environment ``variable`` (``OFFLOAD_WEB_PASSWORD``); None when neither is given."""
    if password_file is not None:
        try:
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(
                f"cannot read {password_file}: {exc}", param_hint=option
            ) from exc
        password = lines[0].strip() if lines else ""
        if not password:
            raise click.BadParameter(f"{password_file} is empty", param_hint=option)
        return password
    return os.environ.get(variable) or None


@click.command()
@app_options
@click.option(
    "--bind",
    default=DEFAULT_BIND,
    show_default=True,
    help="HOST:PORT to listen on. Beyond loopback, a password is required.",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    help="A Host name clients use (repeatable); loopback names and the bound host are "
    "always allowed. '*' turns the check off.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File whose first line is the admin password for the dashboard and /metrics "
    f"(or set {PASSWORD_VARIABLE}).",
)
@click.option(
    "--read-only-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File whose first line is the password of the read-only role: sees the dashboard "
    f"and /metrics, may not act (or set {READ_ONLY_VARIABLE}).",
)
@click.option("--no-dashboard", is_flag=True, help="Serve no dashboard.")
@click.option("--no-metrics", is_flag=True, help="Serve no /metrics.")
@click.option("--access-log", is_flag=True, help="Log every request (status URLs hold tokens).")
@handle_errors
def web(
    app: Offload,
    bind: str,
    allowed_hosts: tuple[str, ...],
    password_file: Path | None,
    read_only_password_file: Path | None,
    no_dashboard: bool,
    no_metrics: bool,
    access_log: bool,
) -> None:
    """Serve the dashboard, the status endpoint and /metrics with uvicorn.

    \b
    GET /                 the dashboard: overview, jobs, processes, schedules, services
                          (admin acts, read-only looks)
    GET /status/{token}   a job's public status (tokens: job.status_token())
    GET /metrics          Prometheus metrics read from the store
    GET /static/offload-status.js   the progress-bar helper for your pages

    Bound beyond loopback (e.g. --bind 0.0.0.0:8787) it refuses to start unless a
    password is configured; add --allowed-host for the names clients use.
    """
    host, port = parse_bind(bind)
    password = read_password(password_file)
    read_only = read_password(
        read_only_password_file, READ_ONLY_VARIABLE, "--read-only-password-file"
    )
    from offload.web.security import is_loopback

    if not is_loopback(host) and password is None and read_only is None:
        click.echo(
            f"error: refusing to serve on {host}, beyond loopback, without credentials: "
            f"set {PASSWORD_VARIABLE} or pass --password-file (HTTP basic authentication "
            "for the dashboard and /metrics), or bind 127.0.0.1 behind a reverse proxy",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    try:
        import uvicorn

        from offload.web import create_app
    except ImportError as exc:
        click.echo(
            f"error: offload web needs the web extra ({exc.name} is missing): "
            "pip install 'offload[web]'",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    hosts = list(allowed_hosts)
    if host not in ("0.0.0.0", "::"):
        hosts.append(host)
    from offload.web.security import LOOPBACK_NAMES

    asgi = create_app(
        app, allowed_hosts=[*LOOPBACK_NAMES, *hosts], password=password,
        read_only_password=read_only, metrics=not no_metrics, dashboard=not no_dashboard,
    )  # fmt: skip
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"offload web on http://{shown}:{port} (store: {app.store.location})", err=True)
    if not app.settings.secret:
        click.echo(
            "warning: the secret setting is not set (OFFLOAD_SECRET): no status token can "
            "be checked, so every /status answer is 404",
            err=True,
        )
    uvicorn.run(asgi, host=host, port=port, access_log=access_log, log_level="info")
