"""``offload prune``: delete finished jobs past their retention, for cron."""

from __future__ import annotations

import time

import click

from offload.app import Offload
from offload.cli.common import app_options, handle_errors
from offload.errors import ConfigError
from offload.retention import (
    FINISHED_STATES,
    PruneResult,
    RetentionPolicy,
    parse_duration,
    pause_after,
)


def _older_than(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, "--older-than", forever=False)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("--older-than: ")) from None


@click.command()
@app_options
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option(
    "--older-than",
    callback=_older_than,
    metavar="DURATION",
    help="Delete jobs finished longer ago than this (90s, 30m, 12h, 7d, 2w), whatever the "
    "retention of their state or task.",
)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([s.value for s in FINISHED_STATES]),
    help="Only jobs in this finished state (repeat for several; default: all four).",
)
@handle_errors
def prune(app: Offload, dry_run: bool, older_than: float | None, states: tuple[str, ...]) -> None:
    """Delete finished jobs past their retention, with their events and messages.

    Runs batch after batch of ``prune_batch`` jobs (each one short transaction, with a
    pause between them) until none is left, then prints what went by state.
    """
    chosen = states or None
    if older_than is not None:
        policy = RetentionPolicy.older_than(older_than, states=chosen)
    else:
        policy = RetentionPolicy.from_settings(app.settings, states=chosen)
    store = app.store
    began = time.monotonic()
    if dry_run:
        counted = store.job_prune_count(policy)
        click.echo(f"would prune {counted.summary()} ({policy.describe()})")
        _per_state(counted, policy)
        return
    total = PruneResult()
    batches = 0
    while True:
        start = time.monotonic()
        result = store.job_prune_expired(policy, limit=app.settings.prune_batch)
        batches += 1
        total = total.plus(result)
        if not result.full:
            break
        time.sleep(pause_after(time.monotonic() - start))
    seconds = time.monotonic() - began
    runs = "1 batch" if batches == 1 else f"{batches} batches"
    click.echo(f"pruned {total.summary()} in {runs}, {seconds:.1f} s ({policy.describe()})")
    _per_state(total, policy)


def _per_state(result: PruneResult, policy: RetentionPolicy) -> None:
    """One line per state the policy prunes: ``  succeeded    120``."""
    for state in policy.states:
        click.echo(f"  {state.value:<12} {result.jobs.get(state, 0)}")
