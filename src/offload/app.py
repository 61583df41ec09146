"""The app: settings, the task registry and the store handle."""

from __future__ import annotations

import inspect
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, Literal, Protocol, TypeVar, Unpack, overload

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

F = TypeVar("F", bound=Callable[..., Any])


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
