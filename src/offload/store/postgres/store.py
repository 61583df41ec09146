"""The PostgreSQL store itself: the class that puts its parts together (jobs, runs,
processes and locks, schedules, each a mixin of its own module, on the shared core) and its
wake-ups."""

from __future__ import annotations

from collections.abc import Sequence

from offload.store.base import Waiter
from offload.store.postgres.groups import GroupsMixin
from offload.store.postgres.jobs import JobsMixin
from offload.store.postgres.listen import ListenWaiter
from offload.store.postgres.processes import ProcessesMixin
from offload.store.postgres.prune import PruneMixin
from offload.store.postgres.runs import RunsMixin
from offload.store.postgres.schedules import SchedulesMixin


# SchedulesMixin and GroupsMixin first: they build on JobsMixin.
class PostgresStore(SchedulesMixin, GroupsMixin, JobsMixin, RunsMixin, ProcessesMixin, PruneMixin):
    """The store for ``postgresql://`` urls. See the package docstring."""

    def waiter(self, queues: Sequence[str]) -> Waiter:
        return ListenWaiter(self.url, self.channel, queues, self.db.connect_kwargs)
