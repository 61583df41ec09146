"""The ``offload`` command. Subcommands live in their own modules and load lazily, so
``offload ps`` never imports worker code and ``import offload`` never imports click."""

from __future__ import annotations

import importlib

import click

# name -> (module, attribute)
_COMMANDS = {
    "worker": ("offload.cli.worker", "worker"),
    "drain": ("offload.cli.worker", "drain"),
    "service": ("offload.cli.worker", "service"),
    "ps": ("offload.cli.ps", "ps"),
    "jobs": ("offload.cli.jobs", "jobs"),
    "enqueue": ("offload.cli.jobs", "enqueue"),
    "groups": ("offload.cli.groups", "groups"),
    "migrate": ("offload.cli.migrate", "migrate"),
    "prune": ("offload.cli.prune", "prune"),
    "schedules": ("offload.cli.schedules", "schedules"),
    "ensure": ("offload.cli.launch", "ensure"),
    "wake-listener": ("offload.cli.launch", "wake_listener"),
    "web": ("offload.cli.web", "web"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module_name, attr = _COMMANDS[name]
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="offload")
def main() -> None:
    """offload: background jobs on SQLite or PostgreSQL.

    \b
    Ways to get jobs run:
      worker          a pool under systemd, supervisord or a container
      drain           from cron, every minute: runs what is due, then exits
      ensure          from cron, every minute: starts a pool unless one runs
      wake-listener   on job servers: starts a drain when a web host pings
    Named services (@app.service) run under `worker`, or alone under `service`.
    In the app: Offload(autostart="spawn") starts a drain on enqueue when
    none runs; task.after_response(...) runs a job after the HTTP response.
    """
