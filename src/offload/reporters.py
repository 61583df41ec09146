"""Where a running job's reports go: nowhere, straight to the store, or up a worker's pipe.

A :class:`~offload.context.JobContext` coalesces progress and hands what the job reports
(progress, log lines, saved values) to a reporter, and asks it whether someone wants the
job cancelled. Which reporter depends on where the job runs:

* :class:`NullReporter`: a task called directly, outside any job.
* :class:`StoreReporter`: a job run in this process (inline, test helpers, after a
  response), written to the store fenced on the run's attempt.
* :class:`PipeReporter`: a job in a worker's child, sent to the supervisor, which batches
  the writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from offload.types import MessageAdd, ProgressUpdate, SaveValue

if TYPE_CHECKING:
    from offload.store.base import Store

#: How often a StoreReporter reads the job's cancel flag, at most (seconds).
CANCEL_POLL = 0.5


class Reporter(Protocol):
    """What a job context reports to."""

    def progress(self, current: float, total: float | None, message: str | None) -> None: ...

    def message(self, text: str) -> None: ...

    def save(self, key: str, value: str) -> None: ...

    def cancel_requested(self) -> bool: ...


class NullReporter:
    """Used when a task is called directly, outside any job: reports go nowhere."""

    def progress(self, current: float, total: float | None, message: str | None) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def save(self, key: str, value: str) -> None:
        pass

    def cancel_requested(self) -> bool:
        return False


class StoreReporter:
    """Reports of a job running in this process, written straight to the store."""

    def __init__(self, store: Store, job_id: str, attempt: int) -> None:
        self.store, self.job_id, self.attempt = store, job_id, attempt
        self._cancel_checked = 0.0
        self._cancel = False

    def progress(self, current: float, total: float | None, message: str | None) -> None:
        update = ProgressUpdate(self.job_id, self.attempt, current, total, message)
        self.store.job_write(progress=[update])

    def message(self, text: str) -> None:
        self.store.job_write(messages=[MessageAdd(self.job_id, self.attempt, text)])

    def save(self, key: str, value: str) -> None:
        self.store.job_write(saves=[SaveValue(self.job_id, self.attempt, key, value)])

    def note_cancel(self) -> None:
        """Someone asked to cancel the job (learnt by a lease renewal)."""
        self._cancel = True

    def cancel_requested(self) -> bool:
        now = time.monotonic()
        if not self._cancel and now - self._cancel_checked > CANCEL_POLL:
            self._cancel_checked = now
            row = self.store.job_get(self.job_id)
            self._cancel = bool(row and row.cancel_requested)
        return self._cancel


class PipeReporter:
    """Sends a job's reports to its supervisor with ``send(**message)``.

    Cancellation is learnt lazily: ``poll_cancels()`` reads the pipe without blocking and
    returns the ids asked to cancel, so a job that never asks pays nothing.
    """

    def __init__(
        self,
        job_id: str,
        attempt: int,
        send: Callable[..., None],
        poll_cancels: Callable[[], set[str]],
    ) -> None:
        self._id, self._attempt = job_id, attempt
        self._send, self._poll = send, poll_cancels
        self._cancel = False

    def _report(self, op: str, **fields: Any) -> None:
        self._send(op=op, job=self._id, attempt=self._attempt, **fields)

    def progress(self, current: float, total: float | None, message: str | None) -> None:
        self._report("progress", current=current, total=total, message=message)

    def message(self, text: str) -> None:
        self._report("message", text=text)

    def save(self, key: str, value: str) -> None:
        self._report("save", key=key, value=value)

    def cancel_requested(self) -> bool:
        if not self._cancel:
            self._cancel = self._id in self._poll()
        return self._cancel
