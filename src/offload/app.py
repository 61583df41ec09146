"""The app: settings, the task registry and the store handle."""

from __future__ import annotations

import datetime as dt
import inspect
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, Literal, Protocol, TypeVar, Unpack, overload

from offload.context import JobContext
from offload.errors import ConfigError, ConfigWarning, GroupNotFound, JobNotFound, TaskNotFound
from offload.groups import Group
from offload.jobs import Job
from offload.settings import Settings
from offload.store.base import Store
from offload.tasks import (
    TASK_OPTIONS,
    AsyncTask,
    P,
    R,
    Task,
    TaskOptionArgs,
    TaskOptions,
    _unregistered,
)
from offload.types import NewJob

if TYPE_CHECKING:
    from offload.scheduling.periodic import CatchUp, Periodic
    from offload.services.client import Services
    from offload.services.definitions import ServiceDefinition, ServiceOptionArgs

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)
TaskT = TypeVar("TaskT", bound=Task[Any, Any])


class TaskDecorator(Protocol):
    """What ``@app.task(...)`` returns: keeps the function's parameters and result type."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class ContextTaskDecorator(Protocol):
    """``@app.task(context=True)``: the JobContext parameter is not part of enqueue()."""

    @overload
    def __call__(
        self, fn: Callable[Concatenate[JobContext, P], Coroutine[Any, Any, R]], /
    ) -> AsyncTask[P, R]: ...

    @overload
    def __call__(self, fn: Callable[Concatenate[JobContext, P], R], /) -> Task[P, R]: ...


class Offload:
    """An offload app. Building it does no I/O; the store opens on first use.

    >>> app = Offload()                          # OFFLOAD_URL, else sqlite:///offload.db
    >>> app = Offload("sqlite:///jobs.db", lease=10)
    >>> @app.task(retries=5)
    ... def send_mail(to: str) -> None: ...
    >>> job = send_mail.enqueue("ada@example.com")
    """

    def __init__(
        self, url: str | None = None, *, settings: Settings | None = None, **overrides: Any
    ) -> None:
        if settings is not None and (url is not None or overrides):
            raise ConfigError("pass either settings= or url/keyword settings, not both")
        self.settings = settings or Settings.from_env(url=url, **overrides)
        self.tasks: dict[str, Task[Any, Any]] = {}
        #: Registered services by name (see :meth:`service`).
        self._services: dict[str, ServiceDefinition] = {}
        self._service_clients: Services | None = None
        #: Periodic schedules by name (``@app.periodic``); every worker of the app fires them.
        self.schedules: dict[str, Periodic] = {}
        self._store: Store | None = None
        self._store_pid = 0
        # Threads of a web server make their first enqueue at once: one store (one
        # connection pool) per process, not one per thread that raced to open it.
        self._store_lock = threading.Lock()
        _apps.add(self)

    # -- the store -----------------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The store, opened on first use (and again in a forked child)."""
        store = self._store
        if store is not None and self._store_pid == os.getpid():
            return store
        with self._store_lock:
            if self._store is None or self._store_pid != os.getpid():
                from offload.store import open_store  # the drivers load on first use

                self._store = open_store(self.settings)
                self._store_pid = os.getpid()
            return self._store

    def migrate(self) -> int:
        """Create or upgrade the schema; returns its version."""
        return self.store.migrate()

    def close(self) -> None:
        """Close the store's connections (it reopens on next use)."""
        with self._store_lock:
            if self._store is not None and self._store_pid == os.getpid():
                self._store.close()
            self._store = None

    # -- tasks -----------------------------------------------------------------------------
    @overload
    def task(
        self,
        fn: None = None,
        *,
        context: Literal[True],
        name: str | None = ...,
        **options: Unpack[TaskOptionArgs],
    ) -> ContextTaskDecorator: ...

    @overload
    def task(
        self,
        fn: None = None,
        *,
        context: Literal[False] = ...,
        name: str | None = ...,
        **options: Unpack[TaskOptionArgs],
    ) -> TaskDecorator: ...

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R]) -> Task[P, R]: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        context: bool = False,
        name: str | None = None,
        **options: Unpack[TaskOptionArgs],
    ) -> Any:
        """Register a function as a task (use as ``@app.task`` or ``@app.task(...)``).

        Options are validated here: ``name`` (default ``module.qualname``), ``queue``,
        ``priority`` (higher first), ``retries`` (after the first attempt),
        ``backoff`` (seconds, exponential with jitter; or a list of delays), ``timeout``
        (seconds; the worker kills the job from outside), ``memory_limit`` (bytes),
        ``context`` (pass a :class:`JobContext` as the first argument).
        """
        unknown = set(options) - TASK_OPTIONS
        if unknown:
            raise ConfigError(f"unknown task option(s): {', '.join(sorted(unknown))}")

        def register(func: Callable[..., Any], stacklevel: int = 2) -> Task[Any, Any]:
            task_name = name or f"{func.__module__}.{func.__qualname__}"
            if name is None and func.__module__ == "__main__":
                warnings.warn(
                    f"task {task_name!r} is defined in __main__: a worker that imports your "
                    "app as module:attribute registers it under another name and never runs "
                    "its jobs; give it name=... or define it in an importable module",
                    ConfigWarning,
                    stacklevel=stacklevel,
                )
            task_options = TaskOptions(name=task_name, context=context, **options)
            existing = self.tasks.get(task_name)
            if existing is not None and existing.fn is not func:
                raise ConfigError(f"a task named {task_name!r} is already registered")
            cls = AsyncTask if inspect.iscoroutinefunction(func) else Task
            task: Task[Any, Any] = cls(self, func, task_options)
            self.tasks[task_name] = task
            return task

        if fn is not None:
            return register(fn, stacklevel=3)
        return register

    def get_task(self, name: str) -> Task[Any, Any]:
        """The registered task of this name, or TaskNotFound."""
        try:
            return self.tasks[name]
        except KeyError:
            raise TaskNotFound(f"no task named {name!r} is registered in this app") from None

    # -- services --------------------------------------------------------------------------
    def service(self, name: str, **options: Unpack[ServiceOptionArgs]) -> Callable[[C], C]:
        """Register a class as the service ``name``; returns the class unchanged.

        The class has ``work(request) -> reply`` and may have ``loop()`` (every ``tick``
        seconds), ``setup()`` and ``teardown()``; see
        :class:`~offload.services.ServiceOptions` for the options.

        >>> @app.service("cache", idempotent=True)
        ... class Cache:
        ...     def work(self, request: dict[str, str]) -> str: ...
        """
        from offload.services.definitions import SERVICE_OPTIONS, ServiceOptions, define, register

        unknown = set(options) - SERVICE_OPTIONS
        if unknown:
            raise ConfigError(f"unknown service option(s): {', '.join(sorted(unknown))}")
        service_options = ServiceOptions(name=name, **options)

        def decorate(cls: C) -> C:
            register(self, define(cls, service_options))
            return cls

        return decorate

    @property
    def services(self) -> Services:
        """Clients of the registered services, by name: ``app.services["cache"].call(...)``."""
        if self._service_clients is None:
            from offload.services.client import Services

            self._service_clients = Services(self)
        return self._service_clients

    # -- periodic schedules ------------------------------------------------------------
    def periodic(
        self,
        cron: str | None = None,
        /,
        *,
        every: float | dt.timedelta | None = None,
        tz: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        catch_up: CatchUp = "latest",
        catch_up_limit: int = 100,
    ) -> Callable[[TaskT], TaskT]:
        """Enqueue a task on a schedule; stack it above ``@app.task(...)``.

        ``cron`` is a cron expression (five fields, or six with seconds first) read in
        time zone ``tz`` (an IANA name, default UTC); or ``every`` gives a fixed interval
        in whole seconds (at least 1; the fires fall on its multiples since the epoch).
        Each fire enqueues one job with the fixed ``args`` and ``kwargs``. ``name``
        (default: the task's name) is what the store records fires under: give one to
        schedule a task twice. ``catch_up`` says what runs after downtime: ``"latest"``
        missed fire once, ``"all"`` missed fires (the latest ``catch_up_limit``), or
        ``"none"`` (see :mod:`offload.scheduling.periodic`).

        Everything is checked here, when the decorator runs: a bad expression or an
        unknown zone raises ConfigError naming the expression.

        >>> @app.periodic("0 3 * * *", tz="Europe/Berlin", catch_up="none")
        ... @app.task
        ... def nightly_cleanup() -> None: ...
        """
        from offload.scheduling.periodic import Periodic, make_spec, periodic_args

        spec = make_spec(cron, every, tz)
        what = cron if cron is not None else f"every={every!r}"

        def register(task: TaskT) -> TaskT:
            if not isinstance(task, Task):
                raise ConfigError(
                    f"periodic {what!r}: expected a task; stack @app.periodic above "
                    f"@app.task(...), got {task!r:.80}"
                )
            if task.app is not self or self.tasks.get(task.name) is not task:
                raise ConfigError(
                    f"periodic {what!r}: task {task.name!r} is not registered in this app"
                )
            schedule_name = task.name if name is None else name
            fixed_args, fixed_kwargs = periodic_args(args, kwargs, str(schedule_name))
            schedule = Periodic(
                schedule_name, task, spec, fixed_args, fixed_kwargs, catch_up, catch_up_limit
            )
            if schedule_name in self.schedules:
                raise ConfigError(
                    f"a schedule named {schedule_name!r} is already registered; give this "
                    "one another name=..."
                )
            self.schedules[schedule_name] = schedule
            return task

        return register

    # -- jobs ------------------------------------------------------------------------------
    def get_job(self, job_id: str) -> Job[Any]:
        """The job with this id; JobNotFound if there is none (never a "pending" guess)."""
        record = self.store.job_get(str(job_id))
        if record is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return Job(self, record)

    # -- groups ----------------------------------------------------------------------------
    def group(
        self,
        name: str | None = None,
        *,
        then: Task[Any, Any] | None = None,
        after: Group | str | None = None,
        stop_on_failure: bool = False,
    ) -> Group:
        """Store a new open group; add members with ``group.add(task, *args)``.

        ``then``: a task run once, when every member is final, with keyword arguments
        ``group_id``, ``succeeded`` and ``failed``. ``after``: a group (stage) that must
        be complete before this one's members run. ``stop_on_failure``: a failed member
        of this group stops the stages after it. Use as ``with app.group(then=cb) as g:``
        to seal it when the block ends (see :mod:`offload.groups`).
        """
        from offload import groups

        return groups.create(
            self, name=name, then=then, after=after, stop_on_failure=stop_on_failure
        )

    def get_group(self, group_id: str) -> Group:
        """The group with this id; GroupNotFound if there is none."""
        row = self.store.group_get(str(group_id))
        if row is None:
            raise GroupNotFound(f"no group with id {group_id!r}")
        return Group(self, row)

    def _run_group_followups(self, group_id: str) -> None:
        """Inline mode: once the group is complete, run what its completion made due
        (its callback, the members of the stages after it), as a worker would."""
        row = self.store.group_get(group_id)
        if row is None or row.completed_at is None:
            return
        from offload.execution import Runner  # the executor is needed only in inline mode

        queues = sorted({t.options.queue for t in self.tasks.values()})
        Runner(self, worker_id=f"inline-{os.getpid()}").run(queues=queues)

    def enqueue_by_name(
        self,
        task_name: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        delay: float = 0.0,
    ) -> Job[Any]:
        """Enqueue by task name: the registered task's options if this app knows it, else
        a job on ``queue`` (default ``default``) that waits for a worker that does."""
        task = self.tasks.get(task_name)
        if task is None:
            options = TaskOptions(name=task_name, queue=queue or "default")
            task = Task(self, _unregistered, options)
        elif queue is not None:
            task = task.using(queue=queue)
        if delay:
            task = task.using(delay=delay)
        return task.enqueue(*args, **(kwargs or {}))

    def _enqueue(
        self, jobs: list[NewJob], connection: Any, tasks: Sequence[Task[Any, Any]]
    ) -> list[Job[Any]]:
        ids = self.store.job_insert_many(jobs, connection=connection)
        if self.settings.autostart != "off" and not self.settings.inline:
            from offload.autostart import after_enqueue  # loaded only when autostart is on

            after_enqueue(self, jobs)
        now = time.time()
        handles: list[Job[Any]] = [
            Job(self, None, job_id=new.id, pending=(new, now))
            if stored_id == new.id
            else self._existing(stored_id)  # a unique key matched a waiting or running job
            for new, stored_id in zip(jobs, ids, strict=True)
        ]
        if self.settings.inline and connection is None:
            self._run_inline(handles, tasks)
        return handles

    def _existing(self, job_id: str) -> Job[Any]:
        row = self.store.job_get(job_id)
        if row is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return Job(self, row, deduplicated=True)

    def _run_inline(self, handles: list[Job[Any]], tasks: Sequence[Task[Any, Any]]) -> None:
        from offload.execution import Runner  # the executor is needed only in inline mode

        runner = Runner(self, worker_id=f"inline-{os.getpid()}")
        for handle, task in zip(handles, tasks, strict=True):
            if task.name in self.tasks:
                runner.run(
                    queues=[handle.queue], tasks=[task.name], job_ids=[handle.id], max_jobs=1
                )
                handle.refresh()


#: Every app of this process: a forked child gets fresh store locks (a thread of the parent
#: may have held one at the fork).
_apps: weakref.WeakSet[Offload] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for app in list(_apps):
        app._store_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
