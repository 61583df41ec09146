"""The SQLite store itself: the class that puts its parts together (jobs, runs,
processes and locks, schedules, each a mixin of its own module) and its lifecycle."""

from __future__ import annotations

import os
from collections.abc import Sequence

from offload.settings import Settings
from offload.store.base import Waiter
from offload.store.migrate import check_version
from offload.store.sqlite import clock
from offload.store.sqlite import queries as Q
from offload.store.sqlite.connection import BACKEND, Database, database_path
from offload.store.sqlite.groups import GroupsMixin
from offload.store.sqlite.jobs import JobsMixin
from offload.store.sqlite.processes import ProcessesMixin
from offload.store.sqlite.prune import PruneMixin
from offload.store.sqlite.runs import RunsMixin
from offload.store.sqlite.schedules import SchedulesMixin
from offload.store.sqlite.wake import SocketWaiter, WakeSender, wake_dir


# SchedulesMixin and GroupsMixin first: they build on JobsMixin.
class SQLiteStore(SchedulesMixin, GroupsMixin, JobsMixin, RunsMixin, ProcessesMixin, PruneMixin):
    """The embedded default store. See the package docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.url
        self.path = os.path.abspath(database_path(settings.url))
        self.location = f"sqlite:///{self.path}"
        self.db = Database(settings, self.path)
        self._waker = WakeSender(wake_dir(self.path))
        self._claimed_queues = {}

    # -- lifecycle ---------------------------------------------------------------------
    def migrate(self) -> int:
        return self.db.user_version()

    def schema_check(self) -> None:
        check_version(self.db.user_version(), BACKEND, self.path)

    def close(self) -> None:
        self.db.close()
        self._waker.close()

    def now(self) -> float:
        return clock.wall()

    # -- wake-ups ------------------------------------------------------------------------
    def waiter(self, queues: Sequence[str]) -> Waiter:
        return SocketWaiter(wake_dir(self.path), queues)

    # -- checks (tests and `offload doctor`) ----------------------------------------------
    def integrity_check(self) -> str:
        """Run ``PRAGMA integrity_check``; "ok" when the file is sound."""
        return str(self.db.read(Q.INTEGRITY_CHECK)[0][0])
