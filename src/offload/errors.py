"""Exceptions raised by offload.

Every error offload raises derives from :class:`OffloadError`, so ``except
OffloadError`` catches them all::

    OffloadError
    ├─ ConfigError            a setting or task option is invalid; names key, value, expectation
    ├─ StoreError
    │  ├─ StoreUnavailable    cannot connect, or the database stayed locked past the busy timeout
    │  ├─ StoreFull           the disk under the store is (nearly) full; nothing was written
    │  └─ SchemaError         the database schema is newer or older than this code
    ├─ SerializationError     a value does not survive a strict JSON round trip; names its path
    │  └─ PayloadTooLarge     an encoded payload is over the configured limit
    ├─ TaskNotFound           a job names a task this app does not register
    ├─ JobNotFound            no job has this id
    ├─ JobFailed              raised by ``Job.result()``: error type, message, traceback text
    ├─ JobCancelled           raised by ``Job.result()`` for a cancelled job
    ├─ JobNotFinished         ``Job.result()`` on a job that has not finished yet
    ├─ GroupNotFound          no group has this id
    ├─ GroupClosed            a member was added to a group that is already complete
    ├─ WaitTimeout            ``Job.wait()`` ran out of time (also a ``TimeoutError``)
    └─ ServiceError           a named service could not do what was asked
       ├─ ServiceNotFound     the app registers no service of this name
       ├─ ServiceUnavailable  no instance is reachable, or it died before replying
       ├─ ServiceCallTimeout  no reply within the call's timeout (also a ``TimeoutError``)
       ├─ ServiceAuthError    the handshake failed: the two sides hold different secrets
       └─ ServiceFailed       the service's ``work()`` raised; carries its type and message

Control flow raised by task code, not errors: :class:`Retry` (run again later) and
:class:`Cancel` (stop and mark the job cancelled).
"""

from __future__ import annotations

from offload.types import ErrorInfo


class OffloadError(Exception):
    """Base class of every exception offload raises."""


class ConfigError(OffloadError, ValueError):
    """A setting or a task option is invalid."""


class StoreError(OffloadError):
    """The store could not do what was asked."""


class StoreUnavailable(StoreError):
    """The store cannot be reached, or stayed locked past the busy timeout."""


class StoreFull(StoreError):
    """The disk under the store is (nearly) full; nothing was written."""


class SchemaError(StoreError):
    """The database schema does not match this version of offload."""


class SerializationError(OffloadError, ValueError):
    """A value is not strict JSON. ``path`` names where it sits, e.g. ``args[1]['when']``."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class PayloadTooLarge(SerializationError):
    """An encoded payload is larger than ``max_payload_bytes``."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} is {size} bytes encoded, over the limit of {limit} bytes", what)
        self.size = size
        self.limit = limit


class TaskNotFound(OffloadError, LookupError):
    """No task of this name is registered in the app."""


class JobNotFound(OffloadError, LookupError):
    """No job has this id."""


class JobFailed(OffloadError):
    """The job ended ``failed`` or ``quarantined``; carries what the worker captured."""

    def __init__(self, job_id: str, error: ErrorInfo | None) -> None:
        self.job_id = job_id
        self.error = error or ErrorInfo("Error", "")
        self.error_type: str = self.error.type
        self.error_message: str = self.error.message
        self.traceback: str = self.error.traceback
        super().__init__(f"job {job_id} failed: {self.error_type}: {self.error_message}")


class JobCancelled(OffloadError):
    """The job was cancelled before it produced a result."""


class JobNotFinished(OffloadError):
    """The job has no result yet: it is still scheduled, queued or running."""


class GroupNotFound(OffloadError, LookupError):
    """No group has this id."""


class GroupClosed(OffloadError):
    """The group is complete (its callback is stored): no member can be added to it."""


class WaitTimeout(OffloadError, TimeoutError):
    """A wait ran out of time before the job finished."""


class ServiceError(OffloadError):
    """A named service could not do what was asked."""


class ServiceNotFound(ServiceError, LookupError):
    """The app registers no service of this name."""


class ServiceUnavailable(ServiceError):
    """No instance of the service could be reached, or the one serving the request went
    away before it replied.

    ``sent`` is True when the request may have reached the service (it was written and
    the connection then broke): a request that is not idempotent may have run.
    """

    def __init__(self, message: str, *, service: str = "", sent: bool = False) -> None:
        super().__init__(message)
        self.service = service
        self.sent = sent


class ServiceCallTimeout(ServiceError, TimeoutError):
    """The service did not reply within the call's timeout (it may still run the request)."""


class ServiceAuthError(ServiceError):
    """The handshake failed: the client and the service do not hold the same secret, or
    their clocks are too far apart."""


class ServiceFailed(ServiceError):
    """The service's ``work()`` raised: ``error_type`` and ``error_message`` say what."""

    def __init__(self, service: str, error_type: str, error_message: str) -> None:
        super().__init__(f"service {service!r} failed: {error_type}: {error_message}")
        self.service = service
        self.error_type = error_type
        self.error_message = error_message


class ConfigWarning(UserWarning):
    """A configuration that works but is probably not what was meant (a misspelled
    ``OFFLOAD_*`` variable, a task defined in ``__main__`` without a name)."""


class Retry(Exception):
    """Raise from a task to run it again after ``delay`` seconds (uses up an attempt)."""

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason


class Cancel(Exception):
    """Raise from a task to stop now and mark the job ``cancelled``."""

    def __init__(self, reason: str = "cancelled by the task") -> None:
        super().__init__(reason)
        self.reason = reason
