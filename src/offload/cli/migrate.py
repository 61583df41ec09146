"""``offload migrate``: apply and check schema versions."""

from __future__ import annotations

import click

from offload.app import Offload
from offload.cli.common import app_options, handle_errors


@click.command()
@app_options
@handle_errors
def migrate(app: Offload) -> None:
    """Create or upgrade the store's schema, then check it."""
    version = app.migrate()
    app.store.schema_check()
    click.echo(f"schema version {version} in place at {app.settings.url}")
