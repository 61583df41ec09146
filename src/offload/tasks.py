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
from offload.types import JobState, NewJob

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
    unique_key: str | Callable[..., str] | None
    unique_for: float | dt.timedelta | None
    unique_states: Sequence[str] | None
    debounce: float | dt.timedelta | None
    limit: tuple[str | Callable[..., str], int] | None


class UsingArgs(TaskOptionArgs, total=False):
    """What ``task.using(...)`` takes: the task options, and options of one call."""

    delay: float | dt.timedelta
    run_at: dt.datetime | float
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

    ``unique_key`` (a string, or a function of the call's arguments that returns one)
    keeps at most one unfinished job with that key: an enqueue while one is queued or
    running returns that job (``job.deduplicated``). ``unique_for`` (seconds) keeps the
    key for that long after a job took it, whatever became of the job ("one refresh per
    hour"), or only while it is in one of ``unique_states`` (finished states, e.g.
    ``("succeeded",)`` to try again after a failure). ``debounce`` (seconds) merges a
    burst instead: an enqueue while a job with the key waits gives that job the new
    arguments and pushes it back to run ``debounce`` seconds later; a job already
    running does not hold the key.

    ``limit=(key, n)``: at most ``n`` jobs with that key run at once, over every worker
    on every machine (the key may be a function of the arguments, like ``unique_key``).
    Jobs over the limit wait in the queue without taking a worker's place.
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
    unique_key: str | Callable[..., str] | None = None
    #: Normalised to seconds.
    unique_for: Any = None
    #: Normalised to a tuple of JobState.
    unique_states: Any = None
    #: Normalised to seconds.
    debounce: Any = None
    limit: tuple[str | Callable[..., str], int] | None = None
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
        self._check_keys()

    def _check_keys(self) -> None:
        """Validate and normalise ``unique_key``, ``unique_for``, ``unique_states``,
        ``debounce`` and ``limit``."""
        key = self.unique_key
        if key is not None and not callable(key):
            _key_text("unique_key", key)
        if self.unique_for is not None:
            object.__setattr__(self, "unique_for", _seconds("unique_for", self.unique_for))
        if self.debounce is not None:
            object.__setattr__(self, "debounce", _seconds("debounce", self.debounce))
        if self.unique_for is not None and self.debounce is not None:
            raise ConfigError(
                "unique_for and debounce cannot both apply to a job: a window keeps the key "
                "after the job ran, a debounce merges enqueues while the job waits"
            )
        if self.unique_states is not None:
            if self.unique_for is None:
                raise ConfigError("unique_states applies to a window: set unique_for too")
            states = self.unique_states
            if isinstance(states, str) or not isinstance(states, Sequence) or not states:
                raise ConfigError(
                    f"expected unique_states to be a non-empty list of job states, got {states!r}"
                )
            try:
                chosen = tuple(dict.fromkeys(JobState(s) for s in states))
            except ValueError:
                known = ", ".join(s.value for s in JobState)
                raise ConfigError(
                    f"unique_states: expected job states ({known}), got {list(states)!r}"
                ) from None
            object.__setattr__(self, "unique_states", chosen)
        if self.limit is not None:
            limit = self.limit
            if not isinstance(limit, tuple | list) or len(limit) != 2:
                raise ConfigError(
                    f"expected limit to be a (key, most at once) pair such as "
                    f'("api:stripe", 2), got {limit!r}'
                )
            limit_key, most = limit
            if not callable(limit_key):
                _key_text("limit key", limit_key)
            _int_option("limit's most at once", most, minimum=1, maximum=1_000_000)
            object.__setattr__(self, "limit", (limit_key, most))

    @functools.cached_property
    def keyed(self) -> bool:
        """Whether jobs of these options carry a key or a limit (enqueue's slow path)."""
        return not (
            self.unique_key is None
            and self.limit is None
            and self.unique_for is None
            and self.debounce is None
        )

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
        job = NewJob(
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
        )
        if o.keyed:
            job = _with_keys(job, o, args, kwargs, index)
        return job

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


def _with_keys(
    job: NewJob, o: TaskOptions, args: list[Any], kwargs: dict[str, Any], index: int | None
) -> NewJob:
    """``job`` with its unique key, window or debounce and its limit, keys derived from
    the call's arguments where the task gives a function."""
    changes: dict[str, Any] = {}
    if o.unique_key is not None:
        changes["unique_key"] = _derived_key("unique_key", o.unique_key, o, args, kwargs, index)
        changes["unique_for"] = o.unique_for
        changes["unique_states"] = o.unique_states or ()
        changes["debounce"] = o.debounce
    elif o.unique_for is not None or o.debounce is not None:
        option = "unique_for" if o.unique_for is not None else "debounce"
        raise ConfigError(f"task {o.name!r}: {option} needs a unique_key to apply to")
    if o.limit is not None:
        key, most = o.limit
        changes["limit_key"] = _derived_key("limit key", key, o, args, kwargs, index)
        changes["limit_max"] = most
    return dataclasses.replace(job, **changes)


def _derived_key(
    what: str,
    key: str | Callable[..., str],
    o: TaskOptions,
    args: list[Any],
    kwargs: dict[str, Any],
    index: int | None,
) -> str:
    """``key``, or what it returns for these arguments when it is a function."""
    if not callable(key):
        return key
    where = f"items[{index}]: " if index is not None else ""
    got = key(*args, **kwargs)
    try:
        return _key_text(what, got)
    except ConfigError as exc:
        raise ConfigError(f"{where}task {o.name!r}: the {what} function: {exc}") from None


#: Longest unique or limit key accepted, in characters.
MAX_KEY = 500


def _key_text(what: str, value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_KEY:
        raise ConfigError(
            f"expected {what} to be a non-empty str of at most {MAX_KEY} characters, got {value!r}"
        )
    return value


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
