"""What ``@app.service(name, ...)`` declares: a class with ``work(request) -> reply`` and
optional ``loop()``, ``setup()`` and ``teardown()``, and its options.

Registering a service whose ``when_down`` is ``"queue"`` also registers a task,
``offload.service.<name>``, on the service's ``queue``: a send that finds the service
down is stored as a job of it, and a worker that runs the job delivers the payload once
the service is back (see :mod:`offload.services.delivery`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from offload.errors import ConfigError
from offload.services.protocol import check_name
from offload.settings import check_identifier

if TYPE_CHECKING:
    from offload.app import Offload

WhenDown = Literal["raise", "queue"]
#: The prefix of the delivery task of a service whose sends are queued when it is down.
DELIVERY_PREFIX = "offload.service."


class Service:
    """An optional base class for services: every hook but ``work`` does nothing.

    State lives in the instance; one process runs one instance, one request at a time.

    >>> @app.service("counter")
    ... class Counter(Service):
    ...     def setup(self) -> None:
    ...         self.n = 0
    ...     def work(self, request: dict[str, int]) -> int:
    ...         self.n += request["add"]
    ...         return self.n
    """

    def setup(self) -> None:
        """Called once in the service's process, before it listens."""

    def work(self, request: Any) -> Any:
        """Handle one request (strict JSON) and return the reply (strict JSON)."""
        raise NotImplementedError

    def loop(self) -> None:
        """Called every tick (``tick=``, default ``service_tick``) and after requests
        (once per batch of requests that arrived together)."""

    def teardown(self) -> None:
        """Called once when the service stops cleanly (not after a crash)."""


class ServiceOptionArgs(TypedDict, total=False):
    """The options ``@app.service(name, **options)`` takes (see :class:`ServiceOptions`)."""

    tick: float | None
    idempotent: bool
    when_down: WhenDown
    instances: int
    recycle_after: tuple[int, int] | int | None
    memory_limit: int | None
    queue: str


SERVICE_OPTIONS = frozenset(ServiceOptionArgs.__annotations__)


@dataclass(frozen=True)
class ServiceOptions:
    """A service's options, validated when it is declared.

    ``tick``: seconds between ``loop()`` calls (None: the ``service_tick`` setting).
    ``idempotent``: a request may run twice (a call whose service died after it was sent
    is tried again on another instance, and so is a queued delivery).
    ``when_down``: what ``send`` does when no instance is reachable: ``raise``
    (ServiceUnavailable at once) or ``queue`` (store it as a job the service receives
    when it is back). ``instances``: processes per host that runs the service; clients
    spread their requests across every instance of every host. ``recycle_after``: replace
    the process after a random number of requests in this range (None: never).
    ``memory_limit``: replace it once its resident size passes this many bytes.
    ``queue``: the queue of its delivery jobs.
    """

    name: str
    tick: float | None = None
    idempotent: bool = False
    when_down: WhenDown = "raise"
    instances: int = 1
    recycle_after: tuple[int, int] | int | None = None
    memory_limit: int | None = None
    queue: str = "services"

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.tick is not None and not _positive_number(self.tick):
            raise ConfigError(
                f"expected tick to be a positive number of seconds, got {self.tick!r}"
            )
        if not isinstance(self.idempotent, bool):
            raise ConfigError(f"expected idempotent to be a bool, got {self.idempotent!r}")
        if self.when_down not in ("raise", "queue"):
            raise ConfigError(
                f"expected when_down to be 'raise' or 'queue', got {self.when_down!r}"
            )
        if not _int_in(self.instances, 1, 64):
            raise ConfigError(
                f"expected instances to be an int from 1 to 64, got {self.instances!r}"
            )
        recycle = self.recycle_after
        if recycle is not None:
            low, high = (recycle, recycle) if isinstance(recycle, int) else tuple(recycle)
            if not (_int_in(low, 1, 10**12) and _int_in(high, low, 10**12)):
                raise ConfigError(
                    "expected recycle_after to be a positive int or a (min, max) pair of "
                    f"them, got {recycle!r}"
                )
            object.__setattr__(self, "recycle_after", (low, high))
        if self.memory_limit is not None and not _int_in(self.memory_limit, 1, 2**62):
            raise ConfigError(
                f"expected memory_limit to be a positive number of bytes, got {self.memory_limit!r}"
            )
        check_identifier("queue", self.queue)

    def recycle_at(self) -> int | None:
        """Requests this instance serves before it is replaced (drawn per process)."""
        if self.recycle_after is None:
            return None
        low, high = self.recycle_after  # type: ignore[misc]  # normalised in __post_init__
        return random.randint(low, high)

    @property
    def delivery_task(self) -> str:
        """The name of this service's delivery task."""
        return DELIVERY_PREFIX + self.name


def _positive_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


@dataclass(frozen=True)
class ServiceDefinition:
    """A registered service: its class and options."""

    cls: type[Any]
    options: ServiceOptions

    @property
    def name(self) -> str:
        return self.options.name


def define(cls: object, options: ServiceOptions) -> ServiceDefinition:
    """Check that ``cls`` can be a service (a class with a callable ``work`` whose
    instances can be made without arguments) and wrap it."""
    if not isinstance(cls, type):
        raise ConfigError(
            f"@app.service({options.name!r}) decorates a class, got {type(cls).__name__}"
        )
    for hook in ("work", "loop", "setup", "teardown"):
        value = getattr(cls, hook, None)
        if hook == "work" and value is None:
            raise ConfigError(f"service {options.name!r}: {cls.__qualname__} has no work() method")
        if value is not None and not callable(value):
            raise ConfigError(
                f"service {options.name!r}: {cls.__qualname__}.{hook} is not callable"
            )
    return ServiceDefinition(cls, options)


def register(app: Offload, definition: ServiceDefinition) -> None:
    """Add ``definition`` to the app; with ``when_down="queue"`` also its delivery task."""
    name = definition.name
    existing = app._services.get(name)
    if existing is not None and existing.cls is not definition.cls:
        raise ConfigError(f"a service named {name!r} is already registered")
    app._services[name] = definition
    if definition.options.when_down == "queue":
        from offload.services.delivery import delivery_function

        options = definition.options
        app.task(
            name=options.delivery_task, queue=options.queue, retries=10_000,
            backoff=[0.5, 1.0, 2.0, 5.0], timeout=None,
        )(delivery_function(app, name))  # fmt: skip
