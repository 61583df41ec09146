"""``offload ensure`` (keep a pool alive from cron) and ``offload wake-listener``."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

import click

from offload import logs
from offload.app import Offload
from offload.cli.common import EXIT_FAILED, handle_errors, required_app_options
from offload.cli.worker import _concurrency, _log_file, _queues, _queues_option
from offload.errors import ConfigError


def _app_spec() -> str:
    """The ``--app`` (or ``OFFLOAD_APP``) this command was given."""
    spec = click.get_current_context().params.get("app_spec") or os.environ.get("OFFLOAD_APP")
    if not spec:  # required_app_options refused this already
        raise click.UsageError("no app given")
    if spec.partition(":")[0] == "__main__":
        raise click.UsageError("--app: a started process cannot import '__main__'")
    return str(spec)


@click.command()
@required_app_options
@_concurrency
@_queues_option
@_log_file
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=15.0,
    show_default=True,
    help="seconds to wait for a pool it starts to be ready",
)
@handle_errors
def ensure(
    app: Offload, concurrency: int | None, queues: str | None, log_file: str | None, wait: float
) -> None:
    """Start a worker pool in the background unless one of these queues runs here (cron).

    Exits 0 at once, printing nothing, when a pool of the same queues (for this store) is
    alive on this host, or another `ensure` is starting one; a pool that is stopping does
    not count. Otherwise starts `offload worker` detached, its output appended to
    --log-file (default: the autostart log), waits until it serves, prints what it did
    and exits 0 (1 if the pool exited at once).
    """
    from offload.autostart import locks
    from offload.autostart.spawn import child_env, default_log_path, start_detached
    from offload.worker.config import default_queues

    spec = _app_spec()
    chosen = tuple(_queues(queues) or default_queues(app))
    log_path = os.path.abspath(log_file or default_log_path(app.settings))
    folder = locks.lock_dir(app.settings)
    pool_lock = locks.pool_lock(folder, chosen)
    note = {"queues": ",".join(chosen), "app": spec}
    if locks.probe(pool_lock):
        _log_to(log_path, "ensure.alive", **note, reason="a pool of these queues serves")
        return
    start_fd = locks.try_exclusive(locks.ensure_lock(folder, chosen))
    if start_fd is None:
        _log_to(log_path, "ensure.starting", **note, reason="another ensure is starting one")
        return
    try:
        if locks.probe(pool_lock):  # one became ready since the first look
            _log_to(log_path, "ensure.alive", **note, reason="a pool of these queues serves")
            return
        argv = [
            sys.executable,
            "-m",
            "offload",
            "worker",
            "--app",
            spec,
            "--queues",
            ",".join(chosen),
        ]
        if concurrency:
            argv += ["--concurrency", str(concurrency)]
        argv += ["--started-by-fd", str(start_fd)]
        proc = start_detached(
            argv, env=child_env(app.settings, spec), log_path=log_path, keep_fd=start_fd
        )
    finally:
        os.close(start_fd)
    _log_to(log_path, "ensure.started", **note, pid=proc.pid)
    # Ready once it has let go of the start lock while holding the pool lock.
    deadline = time.monotonic() + wait
    while locks.probe(locks.ensure_lock(folder, chosen)) and proc.poll() is None:
        if time.monotonic() >= deadline:
            click.echo(
                f"ensure: started a pool (pid {proc.pid}), not serving after {wait:g} s yet; "
                f"log: {log_path}"
            )
            return
        time.sleep(0.05)
    if proc.poll() is not None and not locks.probe(pool_lock):
        _log_to(log_path, "ensure.failed", "error", **note, pid=proc.pid, exit_code=proc.returncode)
        click.echo(
            f"error: the pool exited at once with code {proc.returncode}; see {log_path}",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    click.echo(
        f"ensure: started a pool (pid {proc.pid}) for queues {','.join(chosen)}; log: {log_path}"
    )


def _log_to(path: str, event: str, level: str = "info", **fields: Any) -> None:
    """One line in the log ``ensure`` writes to (that of the pools it starts)."""
    line = logs.format_line(level, event, {**fields, "by": os.getpid()})
    try:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    except OSError as exc:
        click.echo(f"warning: cannot write to {path}: {exc.strerror}", err=True)


@click.command("wake-listener")
@required_app_options
@_queues_option
@click.option(
    "--bind",
    default="127.0.0.1:8642",
    show_default=True,
    help="HOST[:PORT] to listen on; other than loopback needs OFFLOAD_WAKE_SECRET",
)
@_log_file
@handle_errors
def wake_listener(app: Offload, queues: str | None, bind: str, log_file: str | None) -> None:
    """Listen for signed wake-ups (autostart="ping:URL") and start a drain here.

    Serves POST /wake until SIGTERM or SIGINT. A wake-up naming a queue that no worker or
    drain here serves starts `offload drain --idle-exit` detached, as autostart="spawn"
    does. Bad or replayed signatures get 401 and start nothing.
    """
    from offload.autostart.listener import WakeListener
    from offload.worker.config import default_queues

    logs.configure(log_file)
    chosen = tuple(_queues(queues) or default_queues(app))
    try:
        listener = WakeListener(app.settings, _app_spec(), chosen, bind)
    except OSError as exc:
        raise ConfigError(f"--bind {bind}: cannot listen: {exc.strerror or exc}") from None
    app.close()  # the listener needs no store connection; the drains open their own

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=listener.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signed = "signed" if listener.secret else "unsigned (loopback only)"
    logs.log("wake.listening", url=listener.url, queues=",".join(chosen), wakeups=signed)
    click.echo(f"wake-listener: listening on {listener.url} for queues {','.join(chosen)}")
    sys.stdout.flush()
    try:
        listener.serve_forever()
    finally:
        listener.close()
    logs.log("wake.stopped", url=listener.url, started=listener.started)
