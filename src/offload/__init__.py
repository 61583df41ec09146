"""offload: background jobs for Python web applications.

Embedded SQLite by default, PostgreSQL to scale out, one API for both::

    from offload import Offload

    app = Offload()                       # OFFLOAD_URL, else sqlite:///offload.db

    @app.task(retries=3, timeout=60)
    def send_welcome(user_id: int) -> None: ...

    job = send_welcome.enqueue(42)        # stored and committed
    job.wait(timeout=10).result()         # run by `offload worker --app myapp:app`
"""

from __future__ import annotations

from offload.app import Offload
from offload.context import JobContext, current_job
from offload.errors import (
    Cancel,
    ConfigError,
    ConfigWarning,
    GroupClosed,
    GroupNotFound,
    JobCancelled,
    JobFailed,
    JobNotFinished,
    JobNotFound,
    OffloadError,
    PayloadTooLarge,
    Retry,
    SchemaError,
    SerializationError,
    ServiceAuthError,
    ServiceCallTimeout,
    ServiceError,
    ServiceFailed,
    ServiceNotFound,
    ServiceUnavailable,
    StoreError,
    StoreFull,
    StoreUnavailable,
    TaskNotFound,
    WaitTimeout,
)
from offload.groups import Group
from offload.jobs import Job
from offload.settings import Settings
from offload.tasks import Task
from offload.types import ErrorInfo, GroupState, JobState, Progress

__version__ = "0.1.0"

__all__ = [
    "Cancel",
    "ConfigError",
    "ConfigWarning",
    "ErrorInfo",
    "Group",
    "GroupClosed",
    "GroupNotFound",
    "GroupState",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobNotFinished",
    "JobNotFound",
    "JobState",
    "Offload",
    "OffloadError",
    "PayloadTooLarge",
    "Progress",
    "Retry",
    "SchemaError",
    "SerializationError",
    "ServiceAuthError",
    "ServiceCallTimeout",
    "ServiceError",
    "ServiceFailed",
    "ServiceNotFound",
    "ServiceUnavailable",
    "Settings",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "Task",
    "TaskNotFound",
    "WaitTimeout",
    "current_job",
]
