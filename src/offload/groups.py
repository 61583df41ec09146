"""Groups: a set of jobs with a callback that runs once every member is final, members
that add members while the group runs, and stages (a group that starts when the one
before it is complete).

>>> with app.group(name="import", then=report) as g:     # sealed when the block ends
...     g.add(import_chunk, 0, 1000)
>>> g.wait(timeout=60).progress                           # (done, total)

* **Sealing.** A group is complete only when it is sealed and no member is unfinished,
  so a script adding members one by one never sees it complete after the first one.
  ``with`` seals it when the block ends without an exception (``seal()`` does it by
  hand); a block that raises leaves it open, its members still running.
* **Cascading.** A running member may add members to its own (sealed) group, or to any
  group that is not complete: the add is committed before the member's outcome is
  written, so the group cannot complete in between. Adds made by a run are numbered, and
  the ids of the jobs they store derive from the member's id and that number: a member
  that crashes and runs again adds the same members, which are stored and counted once.
* **Completion.** Decided by the store in the transaction that makes the last member
  final (an outcome, a lease rescue, a cancel, a delete), which also stores the callback
  job (``then``), called as ``then(group_id=..., succeeded=..., failed=...)``: exactly
  one callback job per group. ``failed`` counts every member that did not succeed
  (failed, cancelled or quarantined).
* **Stages.** ``app.group(after=previous)``: its members wait (state ``waiting``,
  holding no worker slot) until ``previous`` is complete, then become queued. With
  ``stop_on_failure=True`` on ``previous``, a failed member there stops the stages after
  it: their members end ``cancelled`` and they complete at once.
* Adding to a complete group raises :class:`~offload.errors.GroupClosed`, naming it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from offload.context import current_job
from offload.errors import ConfigError, GroupNotFound, WaitTimeout
from offload.ids import uuid7
from offload.jobs import Job, snapshot
from offload.types import CallbackSpec, GroupRow, GroupState, JobState, NewGroup, NewJob

if TYPE_CHECKING:
    from types import TracebackType

    from offload.app import Offload
    from offload.tasks import Task

__all__ = ["Group", "GroupState"]

#: The keyword arguments a group's callback is called with.
CALLBACK_KWARGS = {"group_id": "", "succeeded": 0, "failed": 0}


class Group:
    """A handle on one stored group, holding the snapshot it last read."""

    __slots__ = ("_row", "app")

    def __init__(self, app: Offload, row: GroupRow) -> None:
        self.app = app
        self._row = row

    # -- the snapshot ------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._row.id

    @property
    def name(self) -> str | None:
        return self._row.name

    @property
    def record(self) -> GroupRow:
        """The raw stored row of the last snapshot."""
        return self._row

    @property
    def state(self) -> GroupState:
        return self._row.state

    @property
    def complete(self) -> bool:
        return self._row.state is GroupState.COMPLETE

    @property
    def total(self) -> int:
        return self._row.total

    @property
    def succeeded(self) -> int:
        return self._row.succeeded

    @property
    def failed(self) -> int:
        """Members that ended other than succeeded (failed, cancelled, quarantined)."""
        return self._row.failed

    @property
    def progress(self) -> tuple[int, int]:
        """``(done, total)``: members in a final state, members stored."""
        return self._row.done, self._row.total

    @property
    def callback_id(self) -> str | None:
        """The id the callback job has (stored when the group completes)."""
        return self._row.callback_id

    # -- members -------------------------------------------------------------------------
    def add(self, task: Task[Any, Any], /, *args: Any, **kwargs: Any) -> Job[Any]:
        """Add one member: a job of ``task`` with these arguments; committed on return."""
        return self._add(task, [task._new_job(list(args), kwargs)])[0]

    def add_many(
        self, task: Task[Any, Any], items: Iterable[tuple[Any, ...] | list[Any] | dict[str, Any]]
    ) -> list[Job[Any]]:
        """Add many members in one transaction: each item is a tuple of positional
        arguments or a dict of keyword arguments (as ``task.enqueue_many``)."""
        jobs = []
        for index, item in enumerate(items):
            if isinstance(item, tuple | list):
                jobs.append(task._new_job(list(item), {}, index))
            elif isinstance(item, dict):
                jobs.append(task._new_job([], item, index))
            else:
                raise ConfigError(
                    f"items[{index}]: expected a tuple of positional arguments or a dict of "
                    f"keyword arguments, got {type(item).__name__}"
                )
        return self._add(task, jobs)

    def map(
        self, task: Task[Any, Any], items: Iterable[Any], *, chunk: int = 100
    ) -> list[Job[Any]]:
        """Add one member per ``chunk`` items: each job gets a list of up to ``chunk``
        items as its one argument (``task.map`` does this on a new group)."""
        if type(chunk) is not int or chunk < 1:
            raise ConfigError(f"expected chunk to be a whole number from 1, got {chunk!r}")
        return self.add_many(task, ((c,) for c in _chunks(items, chunk)))

    def _add(self, task: Task[Any, Any], jobs: list[NewJob]) -> list[Job[Any]]:
        if task.call.connection is not None:
            raise ConfigError("members of a group are stored by the group: drop connection=")
        _derive_ids(jobs, self.id)
        ids = self.app.store.group_add(self.id, jobs)
        now = time.time()
        handles: list[Job[Any]] = []
        for job_id, new in zip(ids, jobs, strict=True):
            if self._row.state is GroupState.WAITING:  # as a snapshot built at add time
                record = dataclasses.replace(snapshot(new, now), state=JobState.WAITING)
                handles.append(Job(self.app, record))
            else:
                handles.append(Job(self.app, None, job_id=job_id, pending=(new, now)))
        if self.app.settings.inline:
            self.app._run_inline(handles, [task] * len(handles))
            self.app._run_group_followups(self.id)
        return handles

    def seal(self) -> Group:
        """No more members from outside: the group completes once every member is final
        (at once if they all are). Members it runs may still add members. Returns self."""
        self._row = self.app.store.group_seal(self.id)
        if self.app.settings.inline:
            self.app._run_group_followups(self.id)
            self.refresh()
        return self

    def __enter__(self) -> Group:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.seal()

    # -- reading the store ---------------------------------------------------------------
    def refresh(self) -> Group:
        """Read the group again from the store; returns self."""
        row = self.app.store.group_get(self.id)
        if row is None:
            raise GroupNotFound(f"group {self.id} no longer exists")
        self._row = row
        return self

    def wait(self, timeout: float | None = None, *, poll: float = 0.2) -> Group:
        """Block until the group is complete; returns self. WaitTimeout (also a
        TimeoutError) if ``timeout`` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        sleep = 0.002
        while not self.refresh().complete:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(self._still(timeout))
            remaining = poll if deadline is None else max(0.0, deadline - time.monotonic())
            time.sleep(min(sleep, poll, remaining))
            sleep *= 2
        return self

    async def await_complete(self, timeout: float | None = None, *, poll: float = 0.2) -> Group:
        """:meth:`wait` without blocking the event loop; returns self."""
        deadline = None if timeout is None else time.monotonic() + timeout
        sleep = 0.002
        while not (await asyncio.to_thread(self.refresh)).complete:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(self._still(timeout))
            remaining = poll if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.sleep(min(sleep, poll, remaining))
            sleep *= 2
        return self

    def _still(self, timeout: float | None) -> str:
        done, total = self.progress
        return f"group {self.id} still {self.state.value} ({done}/{total} done) after {timeout} s"

    def __repr__(self) -> str:
        done, total = self.progress
        return f"<Group {self.id} {self.state.value} {done}/{total}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Group) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


def create(
    app: Offload,
    *,
    name: str | None = None,
    then: Task[Any, Any] | None = None,
    after: Group | str | None = None,
    stop_on_failure: bool = False,
) -> Group:
    """Store a new open group (see :meth:`Offload.group`)."""
    if name is not None and (not isinstance(name, str) or not name or len(name) > 200):
        raise ConfigError(
            f"expected name to be a non-empty str of at most 200 characters, got {name!r}"
        )
    if not isinstance(stop_on_failure, bool):
        raise ConfigError(f"expected stop_on_failure to be a bool, got {stop_on_failure!r}")
    callback = None
    if then is not None:
        callback = _callback_spec(app, then)
    if isinstance(after, Group):
        after = after.id
    elif after is not None and not isinstance(after, str):
        raise ConfigError(f"expected after to be a Group or a group id, got {after!r}")
    new = NewGroup(
        id=uuid7(), name=name, callback=callback,
        callback_id=uuid7() if callback is not None else None, after=after,
        stop_on_failure=stop_on_failure,
    )  # fmt: skip
    return Group(app, app.store.group_create(new))


def _callback_spec(app: Offload, then: Task[Any, Any]) -> CallbackSpec:
    from offload.tasks import Task, _call_checker

    if not isinstance(then, Task):
        raise ConfigError(f"expected then to be a task (@app.task), got {then!r}")
    if then.app is not app:
        raise ConfigError(f"then={then.name!r} is a task of another app")
    try:
        _call_checker(then.fn, then.options.context)(then.name, [], dict(CALLBACK_KWARGS), None)
    except TypeError as exc:
        raise ConfigError(
            f"then={then.name!r} must accept the keyword arguments group_id, succeeded and "
            f"failed: {exc}"
        ) from None
    o = then.options
    return CallbackSpec(
        task=o.name, queue=o.queue, priority=o.priority, max_attempts=o.retries + 1,
        timeout=o.timeout, options=o.encoded,
    )  # fmt: skip


def _derive_ids(jobs: list[NewJob], group_id: str) -> None:
    """Inside a running job, give the jobs it adds to a group ids derived from its id, the
    group's and the number of the add, so its next run (after a crash) adds the same jobs
    to the same group, stored once (and a new group it makes then gets new ones)."""
    ctx = current_job()
    if ctx is None:
        return
    for job in jobs:
        job.id = derived_id(ctx.id, group_id, ctx._next_add())


def derived_id(parent: str, group_id: str, n: int) -> str:
    """The id of the ``n``-th job a run of job ``parent`` adds to group ``group_id``: a
    UUID (version 8) whose first 48 bits are the parent's time, so it sorts near it."""
    digest = hashlib.sha256(f"{parent}:{group_id}:{n}".encode()).digest()
    head = parent.replace("-", "")[:12]
    if len(head) != 12 or any(ch not in "0123456789abcdef" for ch in head):
        head = digest[:6].hex()
    value = int(head + digest[6:16].hex(), 16)
    value = (value & ~(0xF << 76)) | (0x8 << 76)  # version 8
    value = (value & ~(0x3 << 62)) | (0b10 << 62)  # RFC 9562 variant
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
