"""What a running job sees: its id and attempt, progress, log lines, saved data and
whether someone asked it to stop.

Progress is coalesced here, in the job's own process: a job that reports 10,000 times in a
second sends a handful of updates, and the last value is always flushed before the job's
outcome is recorded.
"""

from __future__ import annotations

import contextvars
import time
from typing import TYPE_CHECKING, Any

from offload.reporters import Reporter
from offload.serialization import dumps_limited

if TYPE_CHECKING:
    from offload.app import Offload
    from offload.groups import Group

PROGRESS_INTERVAL = 0.1  # seconds between two progress writes of one job
#: Saved keys under this prefix are public: the end-user status endpoint shows them.
PUBLIC_PREFIX = "public:"


class JobContext:
    """The running job, as its code sees it.

    Declare ``@app.task(context=True)`` to receive it as the first argument, or call
    :func:`current_job` anywhere inside the job::

        @app.task(context=True)
        def export(ctx: JobContext, report_id: int) -> None:
            for i, page in enumerate(pages, 1):
                ctx.progress(i, total=len(pages), message=f"page {i}")
                if ctx.cancel_requested:
                    raise offload.Cancel("stopped by the user")
    """

    def __init__(
        self,
        *,
        job_id: str,
        task: str,
        queue: str,
        attempt: int,
        reporter: Reporter,
        max_payload_bytes: int = 1024 * 1024,
        app: Offload | None = None,
    ) -> None:
        self.id = job_id
        self.task = task
        self.queue = queue
        self.attempt = attempt
        self._reporter = reporter
        self._limit = max_payload_bytes
        self._pending: tuple[float, float | None, str | None] | None = None
        self._last_sent = 0.0
        self._current = 0.0
        self._total: float | None = None
        self._message: str | None = None
        self._app = app
        self._adds = 0

    @property
    def group(self) -> Group | None:
        """The group this job is a member of (read from the store), or None. Members it
        adds there (``ctx.group.add(...)``) keep the group from completing before them."""
        if self._app is None:
            return None
        group_id = self._app.store.group_of_job(self.id)
        return self._app.get_group(group_id) if group_id is not None else None

    def _next_add(self) -> int:
        """The number of this run's next added group member (see ``groups.derived_id``)."""
        self._adds += 1
        return self._adds

    def progress(
        self, current: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Report ``current`` out of ``total``; ``total`` and ``message`` are kept from the
        last call (or the last :meth:`message`) when omitted."""
        if total is not None:
            self._total = float(total)
        if message is not None:
            self._message = str(message)
        self._current = float(current)
        self._pending = (self._current, self._total, self._message)
        now = time.monotonic()
        if now - self._last_sent >= PROGRESS_INTERVAL or message is not None:
            self.flush()

    def message(self, text: str) -> None:
        """Append a line to the job's log, readable by the user while the job runs; it
        also becomes the progress message (``job.progress.message``) a status page shows."""
        text = str(text)
        self._message = text
        self._pending = (self._current, self._total, text)
        self.flush()
        self._reporter.message(text)

    def save(self, key: str, value: Any, *, public: bool = False) -> None:
        """Keep ``value`` (strict JSON) with the job under ``key``.

        ``public=True`` stores it under ``"public:" + key``: the status endpoint a
        user's page polls (``GET /status/{token}``) shows those keys, and only those.
        """
        key = PUBLIC_PREFIX + str(key) if public else str(key)
        encoded = dumps_limited(value, f"saved[{key!r}]", self._limit)
        self._reporter.save(key, encoded)

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked to cancel this job; stop soon (raise ``Cancel``)."""
        return self._reporter.cancel_requested()

    def flush(self) -> None:
        """Send the last progress value now (called before the outcome is recorded)."""
        if self._pending is not None:
            current, total, message = self._pending
            self._pending = None
            self._last_sent = time.monotonic()
            self._reporter.progress(current, total, message)

    def __repr__(self) -> str:
        return f"<JobContext {self.task} id={self.id} attempt={self.attempt}>"


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "offload_current_job", default=None
)


def current_job() -> JobContext | None:
    """The context of the job running in this thread or task, or None outside a job."""
    return _current.get()


def _set_current(ctx: JobContext | None) -> contextvars.Token[JobContext | None]:
    return _current.set(ctx)


def _reset_current(token: contextvars.Token[JobContext | None]) -> None:
    _current.reset(token)
