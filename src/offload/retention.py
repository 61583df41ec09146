"""Retention: how long finished jobs are kept, and what a prune deleted.

A finished job (``succeeded``, ``failed``, ``cancelled``, ``quarantined``) is kept, with
its events and messages, for the retention of its state, counted from ``finished_at`` on
the store's clock; then a prune deletes it. The retention of each state comes from the
settings (``retention_succeeded`` and so on), unless the job's task declared its own
(``@app.task(retention=...)``), which travels in the job's ``options`` as
``{"retention": {"succeeded": 3600.0, "failed": null}}``: seconds, or ``null`` to keep
for ever. A state the task did not name falls back to the settings.

The stores read that option back in SQL (an index keeps the prune query exact). What they
cannot read (text that is not JSON, a value that is not a non-negative number or null)
counts as no option: the settings' retention applies to that job.

This module imports nothing of offload but its errors and types, so the settings, the
tasks and both stores can use it.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from offload.errors import ConfigError
from offload.types import JobState

if TYPE_CHECKING:
    from offload.settings import Settings

#: The states a prune deletes from, in the order results are reported.
FINISHED_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.QUARANTINED)
#: Written for "keep for ever" where ``None`` cannot be (an environment variable, the CLI).
FOREVER = "forever"
DAY = 86400.0
#: The retention of each state when the settings say nothing.
DEFAULT_RETENTION: dict[JobState, float | None] = {
    JobState.SUCCEEDED: 7 * DAY,
    JobState.FAILED: 30 * DAY,
    JobState.CANCELLED: 7 * DAY,
    JobState.QUARANTINED: 30 * DAY,
}
#: Longest retention accepted (about 100 years, as for delays): past it, say ``forever``.
MAX_RETENTION = 100 * 366 * DAY
#: Most jobs one prune batch may delete (one transaction; a few events and messages each).
MAX_BATCH = 10_000

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY, "w": 7 * DAY}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?\s*([smhdw]?)\s*$")


def parse_duration(text: str, what: str, *, forever: bool = True) -> float | None:
    """Seconds from ``3600``, ``90s``, ``30m``, ``12h``, ``7d`` or ``2w``; None for
    ``forever`` (or ``none``, or nothing) when ``forever`` is allowed.

    >>> parse_duration("7d", "retention")
    604800.0
    """
    lowered = text.strip().lower()
    if forever and lowered in ("", "none", FOREVER):
        return None
    match = _DURATION.match(lowered)
    if match is None:
        also = " or 'forever'" if forever else ""
        raise ConfigError(
            f"{what}: expected seconds or a duration such as 90s, 30m, 12h, 7d, 2w{also}, "
            f"got {text!r}"
        )
    number = lowered[: match.start(2)] if match.group(2) else lowered
    seconds = float(number) * _UNITS[match.group(2) or "s"]
    return check_seconds(what, seconds)


def check_seconds(what: str, value: object) -> float | None:
    """A retention: seconds (a number or a timedelta, 0 to :data:`MAX_RETENTION`), or
    None / ``"forever"`` to keep for ever. 0 means: delete at the next prune."""
    if value is None or value == FOREVER:
        return None
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0 <= value <= MAX_RETENTION  # NaN fails this too
    ):
        raise ConfigError(
            f"expected {what} to be seconds between 0 and {MAX_RETENTION:.0f}, a timedelta, "
            f"or None / 'forever' to keep for ever, got {value!r}"
        )
    return float(value)


def task_retention(value: object) -> tuple[tuple[str, float | None], ...] | None:
    """A task's ``retention=`` option, checked and made canonical: ``(state, seconds or
    None)`` pairs in :data:`FINISHED_STATES` order; None when the task declares none.

    ``3600`` or a timedelta: every finished state; ``"forever"``: every state, for ever;
    a mapping names some states (``{"succeeded": 3600, "failed": None}``).
    """
    if value is None:
        return None
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        value = dict(value)  # the canonical form, given back by ``TaskOptions.replace``
    if isinstance(value, Mapping):
        names = {s.value for s in FINISHED_STATES}
        chosen: dict[str, float | None] = {}
        for key, seconds in value.items():
            name = key.value if isinstance(key, JobState) else key
            if name not in names:
                raise ConfigError(
                    f"retention: expected the keys to be finished states "
                    f"({', '.join(sorted(names))}), got {key!r}"
                )
            chosen[name] = check_seconds(f"retention[{name!r}]", seconds)
        pairs = tuple((s.value, chosen[s.value]) for s in FINISHED_STATES if s.value in chosen)
        return pairs or None
    seconds = check_seconds("retention", value)
    return tuple((s.value, seconds) for s in FINISHED_STATES)


def _states(states: Iterable[JobState | str] | None) -> tuple[JobState, ...]:
    if states is None:
        return FINISHED_STATES
    chosen = []
    for state in states:
        try:
            found = JobState(state)
        except ValueError:
            found = None
        if found not in FINISHED_STATES:
            raise ConfigError(
                f"expected a finished state ({', '.join(s.value for s in FINISHED_STATES)}), "
                f"got {state!r}"
            )
        chosen.append(found)
    return tuple(s for s in FINISHED_STATES if s in chosen)


@dataclass(frozen=True)
class RetentionPolicy:
    """What a prune may delete: the jobs of ``states`` finished longer ago than their
    retention. ``keep`` is the retention of each state (None: for ever) for jobs whose
    task declared none, and for every job when ``per_task`` is False (an operator's
    ``offload prune --older-than``).

    >>> RetentionPolicy.of({"succeeded": 3600}).keep[JobState.SUCCEEDED]
    3600.0
    """

    keep: Mapping[JobState, float | None] = field(default_factory=lambda: dict(DEFAULT_RETENTION))
    per_task: bool = True
    states: tuple[JobState, ...] = FINISHED_STATES

    def __post_init__(self) -> None:
        states = _states(self.states)
        keep = {s: check_seconds(f"retention of {s.value}", self.keep.get(s)) for s in states}
        object.__setattr__(self, "states", states)
        object.__setattr__(self, "keep", keep)

    @classmethod
    def of(
        cls,
        keep: Mapping[JobState | str, float | dt.timedelta | str | None],
        *,
        per_task: bool = True,
        states: Iterable[JobState | str] | None = None,
    ) -> RetentionPolicy:
        """A policy from ``{state: seconds}``; states not named are kept for ever."""
        chosen = _states(states)
        named = {JobState(k): v for k, v in keep.items()}
        return cls(
            {s: check_seconds(f"retention of {s.value}", named.get(s)) for s in chosen},
            per_task=per_task,
            states=chosen,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, states: Iterable[JobState | str] | None = None
    ) -> RetentionPolicy:
        """The settings' retention (``retention_succeeded``, ...), tasks' own honoured."""
        chosen = _states(states)
        keep = {
            JobState.SUCCEEDED: settings.retention_succeeded,
            JobState.FAILED: settings.retention_failed,
            JobState.CANCELLED: settings.retention_cancelled,
            JobState.QUARANTINED: settings.retention_quarantined,
        }
        return cls({s: keep[s] for s in chosen}, states=chosen)

    @classmethod
    def older_than(
        cls, seconds: float, *, states: Iterable[JobState | str] | None = None
    ) -> RetentionPolicy:
        """Every job of ``states`` finished more than ``seconds`` ago, whatever its task
        declared (``offload prune --older-than``)."""
        chosen = _states(states)
        return cls({s: seconds for s in chosen}, per_task=False, states=chosen)

    def wants_overrides(self, state: JobState) -> bool:
        """Whether rows of ``state`` with their own retention may be deleted at all."""
        return state in self.states and (self.per_task or self.keep.get(state) is not None)

    def buckets(
        self, state: JobState, overrides: Sequence[float]
    ) -> list[tuple[float | None, float]]:
        """The groups of ``state``'s rows a prune walks, each ``(stored, keep)``: the
        retention its rows store (None: rows without their own), and the seconds they
        are kept. ``overrides`` are the distinct retentions stored on rows of that state
        (infinite: for ever); groups kept for ever are left out."""
        if state not in self.states:
            return []
        default = self.keep.get(state)
        out: list[tuple[float | None, float]] = []
        if default is not None:
            out.append((None, default))
        for stored in overrides:
            keep = stored if self.per_task else default
            if keep is not None and math.isfinite(keep):
                out.append((stored, keep))
        return out

    def describe(self) -> str:
        """``succeeded 7d, failed 30d, ...`` for logs and the CLI."""
        parts = [f"{s.value} {format_duration(self.keep.get(s))}" for s in self.states]
        suffix = "" if self.per_task else " (tasks' own retention ignored)"
        return ", ".join(parts) + suffix


def format_duration(seconds: float | None) -> str:
    """``7d``, ``12h``, ``90s``; ``forever`` for None."""
    if seconds is None:
        return FOREVER
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class PruneResult:
    """What one prune deleted (or, counting, would delete): jobs by state, and the
    events and messages that went with them. ``full``: a batch reached its limit, so more
    may be waiting."""

    jobs: Mapping[JobState, int] = field(default_factory=dict)
    events: int = 0
    messages: int = 0
    full: bool = False

    @property
    def total(self) -> int:
        return sum(self.jobs.values())

    def plus(self, other: PruneResult) -> PruneResult:
        """Both results together (``full`` is the other's: the later batch's)."""
        jobs = dict(self.jobs)
        for state, n in other.jobs.items():
            jobs[state] = jobs.get(state, 0) + n
        return PruneResult(
            jobs, self.events + other.events, self.messages + other.messages, other.full
        )

    def counts(self) -> dict[str, int]:
        """``{"succeeded": n, ...}`` for every finished state (0s included), in order."""
        return {s.value: self.jobs.get(s, 0) for s in FINISHED_STATES}

    def summary(self) -> str:
        """``12 jobs (succeeded 10, failed 2), 40 events, 3 messages``."""
        jobs = "1 job" if self.total == 1 else f"{self.total} jobs"
        states = ", ".join(f"{s} {n}" for s, n in self.counts().items() if n)
        return f"{jobs}{f' ({states})' if states else ''}, {self.events} events, " + (
            f"{self.messages} messages"
        )


#: Share of the store's time a run of prune batches may take: after a batch that took
#: ``t`` seconds, the next waits ``t * (1 / DUTY - 1)`` (at least :data:`MIN_PAUSE`), so
#: catching up on a backlog never keeps other writers waiting for long.
DUTY = 0.1
MIN_PAUSE = 0.05


def pause_after(elapsed: float) -> float:
    """Seconds to wait before the next batch after one that took ``elapsed``."""
    return max(MIN_PAUSE, elapsed * (1 / DUTY - 1))


#: One group of a state's finished jobs a prune walks: ``(state, the retention its jobs
#: store or None for those without one, the seconds they are kept)``.
Group = tuple[JobState, float | None, float]


def prune_groups(
    policy: RetentionPolicy, next_stored: Callable[[JobState, float], float | None]
) -> list[Group]:
    """The groups a prune by ``policy`` walks, both stores alike. ``next_stored(state,
    previous)`` is the smallest retention above ``previous`` stored on jobs of ``state``
    (an index seek), or None: called until None, it lists them all."""
    groups: list[Group] = []
    for state in policy.states:
        stored: list[float] = []
        if policy.wants_overrides(state):
            previous = -1.0
            while (found := next_stored(state, previous)) is not None:
                previous = float(found)
                stored.append(previous)
        groups.extend((state, s, keep) for s, keep in policy.buckets(state, stored))
    return groups


def prune_count(
    groups: list[Group], count: Callable[[JobState, float | None, float], tuple[Any, Any, Any]]
) -> PruneResult:
    """What a prune of ``groups`` would delete, both stores alike: ``count(state, stored,
    keep)`` gives one group's jobs, events and messages (one query)."""
    jobs: dict[JobState, int] = {}
    events = messages = 0
    for state, stored, keep in groups:
        n, e, m = count(state, stored, keep)
        if n:
            jobs[state] = jobs.get(state, 0) + int(n)
        events += int(e)
        messages += int(m)
    return PruneResult(jobs, events, messages)
