"""The ``offload`` command. Subcommands live in their own modules and load lazily, so
``offload ps`` never imports worker code and ``import offload`` never imports click."""

from __future__ import annotations

import importlib

import click

# name -> (module, attribute)
_COMMANDS = {
    "worker": ("offload.cli.worker", "worker"),
    "drain": ("offload.cli.worker", "drain"),
    "ps": ("offload.cli.ps", "ps"),
    "jobs": ("offload.cli.jobs", "jobs"),
    "enqueue": ("offload.cli.jobs", "enqueue"),
    "migrate": ("offload.cli.migrate", "migrate"),
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
    """offload: background jobs on SQLite or PostgreSQL."""
