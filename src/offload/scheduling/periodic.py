"""Periodic schedules: a task enqueued on a cron expression or a fixed interval, declared
with ``@app.periodic(...)`` stacked above ``@app.task(...)``.

>>> @app.periodic("*/5 * * * *", tz="Europe/Berlin")
... @app.task(queue="reports")
... def refresh_report() -> None: ...
>>> @app.periodic(every=30, args=("eu",), name="ping-eu")
... @app.task
... def ping(region: str) -> None: ...

A schedule is defined in code: every worker whose app declares it fires it, and the store
records each fire once (see :mod:`offload.worker.scheduler`). Everything is checked when
the decorator runs: the expression, the zone, the interval, that the fixed arguments bind
to the task and are strict JSON, the catch-up policy.

**Catch-up** decides what happens to fires that fell due while no scheduler ran (the
workers were down, or no drain ran): ``"latest"`` (the default) runs the latest missed
fire once, ``"all"`` runs every missed fire, the latest ``catch_up_limit`` of them at
most, ``"none"`` runs none and waits for the next fire. A fire less than
:data:`~offload.scheduling.plan.LATE_GRACE` seconds overdue at a running scheduler (a busy
machine, a short store outage) is late, not missed: it fires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from offload.errors import ConfigError, SerializationError
from offload.scheduling.cron import Cron, Every, Spec, every_seconds
from offload.store.rules import MAX_SCHEDULE_NAME
from offload.types import NewJob

if TYPE_CHECKING:
    from offload.tasks import Task

CatchUp = Literal["latest", "all", "none"]
CATCH_UP_POLICIES: tuple[CatchUp, ...] = ("latest", "all", "none")
#: Default and largest ``catch_up_limit``.
DEFAULT_CATCH_UP_LIMIT = 100
MAX_CATCH_UP_LIMIT = 10_000


@dataclass(frozen=True)
class Periodic:
    """One schedule: when (``spec``), what (``task`` with fixed ``args`` and ``kwargs``),
    under which ``name`` its fires are recorded, and its catch-up policy."""

    name: str
    task: Task[Any, Any]
    spec: Spec
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    catch_up: CatchUp = "latest"
    catch_up_limit: int = DEFAULT_CATCH_UP_LIMIT

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name or len(name) > MAX_SCHEDULE_NAME:
            raise ConfigError(
                f"expected the schedule name to be a non-empty str of at most "
                f"{MAX_SCHEDULE_NAME} characters, got {name!r:.80}"
            )
        if self.catch_up not in CATCH_UP_POLICIES:
            raise ConfigError(
                f"schedule {name!r}: expected catch_up to be one of "
                f"{', '.join(map(repr, CATCH_UP_POLICIES))}, got {self.catch_up!r}"
            )
        limit = self.catch_up_limit
        if type(limit) is not int or not 1 <= limit <= MAX_CATCH_UP_LIMIT:
            raise ConfigError(
                f"schedule {name!r}: expected catch_up_limit to be an int from 1 to "
                f"{MAX_CATCH_UP_LIMIT}, got {limit!r}"
            )
        try:
            self.new_job()  # the arguments bind to the task and are strict JSON
        except (TypeError, SerializationError) as exc:
            raise ConfigError(f"schedule {name!r}: {exc}") from None

    def new_job(self) -> NewJob:
        """A job of the task with the schedule's arguments (a new id each call)."""
        return self.task._new_job(list(self.args), dict(self.kwargs))


def make_spec(cron: str | None, every: object, tz: str | None) -> Spec:
    """The :class:`Spec` of ``@app.periodic``'s arguments: a cron expression (with an
    optional zone, default UTC) or ``every`` seconds, exactly one of them."""
    if (cron is None) == (every is None):
        raise ConfigError(
            "periodic: give a cron expression or every=seconds (exactly one), "
            f"got cron={cron!r}, every={every!r}"
        )
    if cron is not None:
        return Cron(cron, "UTC" if tz is None else tz)
    if tz is not None:
        raise ConfigError(
            f"periodic every={every!r}: tz applies to cron expressions only (an interval "
            "fires at the multiples of its seconds, whatever the zone)"
        )
    return Every(every_seconds(every))


def periodic_args(
    args: object, kwargs: object, name: str
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The fixed arguments of a schedule, checked for their shape."""
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise ConfigError(f"schedule {name!r}: expected args to be a tuple or list, got {args!r}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise ConfigError(
            f"schedule {name!r}: expected kwargs to be a dict with str keys, got {kwargs!r}"
        )
    return tuple(args), dict(kwargs)
