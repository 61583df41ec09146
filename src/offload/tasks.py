"""Tasks: registered functions, their options, and enqueueing them as jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import inspect
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypedDict, TypeVar, Unpack

from offload.context import JobContext
from offload.errors import ConfigError, PayloadTooLarge, SerializationError, TaskNotFound
from offload.ids import uuid7
from offload.reporters import NullReporter
from offload.retention import task_retention
from offload.serialization import dumps
from offload.settings import check_identifier
from offload.types import NewJob

if TYPE_CHECKING:
    from offload.app import Offload
    from offload.groups import Group
    from offload.jobs import Job

P = ParamSpec("P")
R = TypeVar("R")


class TaskOptionArgs(TypedDict, total=False):
    """The options a task declares, written once: ``@app.task(**options)`` and
    ``task.using(**options)`` both take them (see :class:`TaskOptions` for their meaning
    and defaults). A new option is a field here and one in :class:`TaskOptions`."""

    queue: str
    priority: int
    retries: int
    backoff: float | Sequence[float]
    timeout: float | None
    memory_limit: int | None
    retention: float | dt.timedelta | Mapping[str, float | dt.timedelta | None] | str | None
    public_result: bool


class UsingArgs(TaskOptionArgs, total=False):
    """What ``task.using(...)`` takes: the task options, and options of one call."""

    delay: float | dt.timedelta
    run_at: dt.datetime | float
    unique_key: str | None
    connection: Any


TASK_OPTIONS = frozenset(TaskOptionArgs.__annotations__)
CALL_OPTIONS = frozenset(UsingArgs.__annotations__) - TASK_OPTIONS


@dataclass(frozen=True)
class TaskOptions:
    """Defaults of a task; ``@app.task(...)`` and ``.using(...)`` both fill them.

    ``backoff`` is the base delay in seconds of an exponential backoff with jitter
    (``base * 2**(n-1)``, times a random factor in [0.5, 1], capped at one hour), or an
    explicit list of delays, one per retry (the last repeats).

    ``retention`` is how long this task's finished jobs are kept: seconds (or a
    timedelta) for every finished state, ``"forever"``, or a mapping of some states to
    seconds or None (for ever), e.g. ``{"succeeded": 3600, "failed": None}``; states it
    does not name, and every state when it is None, keep the settings' retention. It is
    stored with each job, so any worker honours it. Normalised to ``(state, seconds)``
    pairs.
    """

    name: str
    queue: str = "default"
    priority: int = 0
    retries: int = 3
    #: Normalised to a tuple when it is a list of delays.
    backoff: float | Sequence[float] = 2.0
    timeout: float | None = None
    memory_limit: int | None = None
    retention: Any = None
    #: Whether the end-user status endpoint (``GET /status/{token}``) shows the result.
    public_result: bool = False
    context: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or len(self.name) > 200:
            raise ConfigError(
                f"expected name to be a non-empty str of at most 200, got {self.name!r}"
            )
        check_identifier("queue", self.queue)
        _int_option("priority", self.priority, minimum=-(2**31), maximum=2**31 - 1)
        _int_option("retries", self.retries, minimum=0, maximum=10_000)
        if isinstance(self.backoff, Sequence) and not isinstance(self.backoff, str):
            if not self.backoff or not all(_is_seconds(d) for d in self.backoff):
                raise ConfigError(
                    f"expected backoff to be seconds or a non-empty list of seconds, "
                    f"got {self.backoff!r}"
                )
            object.__setattr__(self, "backoff", tuple(float(d) for d in self.backoff))
        elif not _is_seconds(self.backoff):
            raise ConfigError(f"expected backoff to be non-negative seconds, got {self.backoff!r}")
        if self.timeout is not None:
            if not _is_seconds(self.timeout) or not self.timeout > 0:
                raise ConfigError(
                    f"expected timeout to be positive seconds or None, got {self.timeout!r}"
                )
        if self.memory_limit is not None:
            _int_option("memory_limit", self.memory_limit, minimum=1 << 20, maximum=1 << 50)
        object.__setattr__(self, "retention", task_retention(self.retention))
        if not isinstance(self.context, bool):
            raise ConfigError(f"expected context to be a bool, got {self.context!r}")
        if not isinstance(self.public_result, bool):
            raise ConfigError(f"expected public_result to be a bool, got {self.public_result!r}")

    def replace(self, **changes: Any) -> TaskOptions:
        """A copy with some options changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @functools.cached_property
    def encoded(self) -> str:
        """:meth:`job_options`, computed once (the options are frozen)."""
        return self.job_options()

    def job_options(self) -> str:
        """The per-job options the worker needs, as JSON text."""
        opts: dict[str, Any] = {
            "backoff": list(self.backoff) if isinstance(self.backoff, tuple) else self.backoff
        }
        if self.memory_limit is not None:
            opts["memory_limit"] = self.memory_limit
        if self.retention is not None:
            opts["retention"] = dict(self.retention)
        if self.public_result:
            opts["public_result"] = True
        return dumps(opts)


@dataclass(frozen=True)
class CallOptions:
    """Per-call options from ``task.using(...)``."""

    delay: float = 0.0
    run_at: float | None = None
    unique_key: str | None = None
    connection: Any = None


class Task(Generic[P, R]):
    """A registered function. Call it to run inline; ``enqueue`` it to run in a worker.

    >>> @app.task(queue="media", retries=5, timeout=300)
    ... def resize(image_id: int, width: int) -> str: ...
    >>> job = resize.enqueue(42, width=800)       # committed when this returns
    >>> job.wait(timeout=10).result()
    """

    def __init__(
        self,
        app: Offload,
        fn: Callable[..., Any],
        options: TaskOptions,
        call: CallOptions | None = None,
    ) -> None:
        self.app = app
        self.fn = fn
        self.options = options
        self.call = call or CallOptions()
        self.is_async = inspect.iscoroutinefunction(fn)
        self.__name__ = getattr(fn, "__name__", options.name)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def name(self) -> str:
        return self.options.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, outside any job."""
        result: R = self.fn(*_with_context(self, args), **kwargs)
        return result

    def using(self, **changes: Unpack[UsingArgs]) -> Task[P, R]:
        """A copy of this task with options changed for the jobs it enqueues.

        >>> resize.using(queue="urgent", delay=30, unique_key="resize:42").enqueue(42, 800)
        """
        unknown = set(changes) - TASK_OPTIONS - CALL_OPTIONS
        if unknown:
            raise ConfigError(f"unknown option(s) for using(): {', '.join(sorted(unknown))}")
        task_changes: dict[str, Any] = {k: v for k, v in changes.items() if k in TASK_OPTIONS}
        call_changes: dict[str, Any] = {}
        if "delay" in changes:
            call_changes["delay"] = _seconds("delay", changes["delay"])
        if "run_at" in changes:
            call_changes["run_at"] = _timestamp(changes["run_at"])
        if "unique_key" in changes:
            unique_key = changes["unique_key"]
            if unique_key is not None and (not isinstance(unique_key, str) or not unique_key):
                raise ConfigError(f"expected unique_key to be a non-empty str, got {unique_key!r}")
            call_changes["unique_key"] = unique_key
        if "connection" in changes:
            call_changes["connection"] = changes["connection"]
        options = self.options.replace(**task_changes)
        return type(self)(
            self.app, self.fn, options, dataclasses.replace(self.call, **call_changes)
        )

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Store a job that runs this task with these arguments; committed on return."""
        job = self._new_job(list(args), kwargs)
        return self.app._enqueue([job], self.call.connection, [self])[0]

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """The same as :meth:`enqueue` (the name Celery users know)."""
        return self.enqueue(*args, **kwargs)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """:meth:`enqueue` without blocking the event loop (the store is called in a
        thread, so a busy SQLite file or a slow server does not stall other requests)."""
        job = self._new_job(list(args), kwargs)
        enqueued = await asyncio.to_thread(self.app._enqueue, [job], self.call.connection, [self])
        return enqueued[0]

    async def aenqueue_many(
        self, items: Iterable[tuple[Any, ...] | list[Any] | dict[str, Any]]
    ) -> list[Job[R]]:
        """:meth:`enqueue_many` without blocking the event loop."""
        return await asyncio.to_thread(self.enqueue_many, list(items))

    def after_response(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Store a job, and run it in this web process once the response is sent.

        Inside a request wrapped by an :mod:`offload.integrations` hook the job runs on a
        small thread pool after the response (``after_response_threads``); when the pool
        is busy or the process stops, a worker runs it, as if it had been enqueued. If
        the store refuses the job, the request still succeeds (see
        :mod:`offload.after_response`). Outside a request this is :meth:`enqueue`.

        >>> job = send_receipt.after_response(order.id)     # in a view
        """
        # Loaded on first use: the executor and the thread pool are for web processes only.
        from offload.after_response import run_after_response

        return run_after_response(self, args, kwargs)

    async def aafter_response(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """:meth:`after_response` for async views: the store is called in a thread, so
        the event loop is not blocked."""
        from offload.after_response import arun_after_response  # as above

        return await arun_after_response(self, args, kwargs)

    def enqueue_many(
        self, items: Iterable[tuple[Any, ...] | list[Any] | dict[str, Any]]
    ) -> list[Job[R]]:
        """Store many jobs in one transaction (all or none).

        Each item is a tuple (or list) of positional arguments, or a dict of keyword
        arguments: ``resize.enqueue_many([(1, 800), (2, 800), {"image_id": 3, "width": 90}])``.
        """
        jobs = []
        new_job = self._new_job
        for index, item in enumerate(items):
            kind = type(item)
            if kind is tuple or kind is list:
                jobs.append(new_job(list(item), {}, index))
            elif isinstance(item, dict):
                jobs.append(new_job([], item, index))
            elif isinstance(item, tuple | list):
                jobs.append(new_job(list(item), {}, index))
            else:
                raise ConfigError(
                    f"items[{index}]: expected a tuple of positional arguments or a dict of "
                    f"keyword arguments, got {type(item).__name__}"
                )
        return self.app._enqueue(jobs, self.call.connection, [self] * len(jobs))

    def map(
        self,
        items: Iterable[Any],
        *,
        chunk: int = 100,
        then: Task[Any, Any] | None = None,
        name: str | None = None,
        group: Group | None = None,
    ) -> Group:
        """Fan ``items`` out into jobs of up to ``chunk`` items each (the task gets the
        list as its one argument), all members of one group, added in one transaction.

        A new group (``then``, ``name``), sealed on return; or, with ``group``, members
        added to that group, left as it is (open or sealed).

        >>> import_rows.map(rows, chunk=500, then=report).wait(timeout=600)
        """
        if group is None:
            from offload.groups import create

            new = create(self.app, name=name or f"{self.name}.map", then=then)
            new.map(self, items, chunk=chunk)
            return new.seal()
        if then is not None or name is not None:
            raise ConfigError("then= and name= make a new group: pass them without group=")
        group.map(self, items, chunk=chunk)
        return group

    def _new_job(self, args: list[Any], kwargs: dict[str, Any], index: int | None = None) -> NewJob:
        """A job of this task; ``index`` is the item's place in an enqueue_many call,
        named in errors (formatted only then: bulk enqueues are hot)."""
        if self.fn is not _unregistered:
            _call_checker(self.fn, self.options.context)(self.name, args, kwargs, index)
        try:
            args_text = dumps(args, "args") if args else "[]"
            kwargs_text = dumps(kwargs, "kwargs") if kwargs else "{}"
        except SerializationError as exc:
            if index is not None:
                where = f"items[{index}]"
                exc.args = (f"{where}: {exc.args[0]}",)
                exc.path = f"{where}: {exc.path}"
            raise
        limit = self.app.settings.max_payload_bytes
        if len(args_text) + len(kwargs_text) > limit // 4:  # only then count UTF-8 bytes
            size = len(args_text.encode()) + len(kwargs_text.encode())
            if size > limit:
                where = f"items[{index}]: " if index is not None else ""
                raise PayloadTooLarge(f"{where}arguments", size, limit)
        o = self.options
        call = self.call
        return NewJob(
            uuid7(),
            o.name,
            o.queue,
            args_text,
            kwargs_text,
            o.priority,
            call.run_at,
            call.delay,
            o.retries + 1,
            o.timeout,
            o.encoded,
            call.unique_key,
        )

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.options.queue}>"


class AsyncTask(Task[P, R]):
    """A task whose function is ``async def``. Calling it returns the coroutine (await it);
    a worker runs it on the child's event loop."""

    def __call__(  # type: ignore[override]
        self, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        coroutine: Coroutine[Any, Any, R] = self.fn(*_with_context(self, args), **kwargs)
        return coroutine


def _unregistered(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never called
    raise TaskNotFound("this task is not registered in this app")


@functools.cache
def _call_checker(fn: Callable[..., Any], context: bool) -> Callable[..., None]:
    """A check that a call binds to ``fn``'s parameters (less the context), as a worker
    would call it: a bad call raises TypeError at enqueue instead of failing every retry.

    Plain signatures (positional-or-keyword parameters only, called positionally) are
    checked by counting, since bulk enqueues are hot; anything else by ``Signature.bind``.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C function without a signature
        return lambda name, args, kwargs, index: None
    params = list(signature.parameters.values())[1 if context else 0 :]
    signature = signature.replace(parameters=params)
    plain = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
    most = len(params)
    least = sum(1 for p in params if p.default is p.empty)

    def check(name: str, args: list[Any], kwargs: dict[str, Any], index: int | None) -> None:
        if plain and not kwargs and least <= len(args) <= most:
            return
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            where = f"items[{index}]: " if index is not None else ""
            raise TypeError(f"{where}{name}(): {exc}") from None

    return check


def _with_context(task: Task[Any, Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Prepend a detached JobContext for a context task called directly."""
    if not task.options.context:
        return args
    ctx = JobContext(
        job_id="", task=task.name, queue=task.options.queue, attempt=0, reporter=NullReporter()
    )
    return (ctx, *args)


#: Longest delay, timeout or backoff accepted, in seconds (about 100 years): anything longer
#: is a mistake, and would overflow datetimes when shown.
MAX_SECONDS = 100 * 366 * 86400.0
#: Latest ``run_at`` accepted: the end of year 9999 UTC, the last a datetime can show.
MAX_TIMESTAMP = 253402300799.0


def _is_seconds(value: object) -> bool:
    """A finite, non-negative number of seconds, at most MAX_SECONDS (NaN fails too)."""
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= MAX_SECONDS
    )


def _int_option(name: str, value: object, *, minimum: int, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise ConfigError(
            f"expected {name} to be an int between {minimum} and {maximum}, got {value!r}"
        )


def _seconds(name: str, value: object) -> float:
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if not _is_seconds(value):
        raise ConfigError(
            f"expected {name} to be non-negative seconds or a timedelta (at most "
            f"{MAX_SECONDS:.0f}), got {value!r}"
        )
    return float(value)  # type: ignore[arg-type]


def _timestamp(value: object) -> float:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ConfigError(f"expected run_at to be an aware datetime, got naive {value!r}")
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 0 <= value <= MAX_TIMESTAMP:  # NaN fails this too
            return float(value)
        raise ConfigError(
            f"expected run_at to be epoch seconds between 0 and {MAX_TIMESTAMP:.0f} "
            f"(year 9999), got {value!r}"
        )
    raise ConfigError(f"expected run_at to be an aware datetime or epoch seconds, got {value!r}")
