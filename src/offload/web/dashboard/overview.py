"""The overview: jobs finished per minute by outcome, queue depth over time, and the
counts by state and queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from offload.types import JobState
from offload.web.dashboard import charts
from offload.web.dashboard.core import Dashboard
from offload.web.security import Role

#: Minutes the jobs-per-minute chart covers.
MINUTES = 60
#: Seconds between two refreshes of the overview: more than FRESH_FOR, since a refresh
#: sooner would draw the same reading again.
POLL_SECONDS = 5
#: Shortest time an overview reading is reused.
FRESH_FOR = 4.0
STATES = tuple(s.value for s in JobState)


Reading = tuple[float, dict[tuple[str, str], int], dict[tuple[float, str], int]]


class Cached:
    """The last reading of the store, shared by every overview request of the process
    while it is fresh: at least :data:`FRESH_FOR` seconds, and ten times as long as it
    took to read, so open tabs never keep the store busy counting more than a tenth of
    the time (both stores keep their counts, which take under 30 ms to read at a
    million jobs here; a busy or distant server takes longer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: Reading | None = None
        self._until = 0.0

    def get(self, read: Callable[[], Reading]) -> Reading:
        with self._lock:  # one reader at a time; the others wait and share its reading
            if self._value is not None and time.monotonic() < self._until:
                return self._value
            started = time.monotonic()
            value = read()
            took = time.monotonic() - started
            self._value, self._until = value, time.monotonic() + max(FRESH_FOR, 10 * took)
            return value


def routes(d: Dashboard) -> list[Route]:
    sampler = charts.DepthSampler()
    cached = Cached()

    async def overview(request: Request, role: Role) -> Response:
        store = d.app.store

        def read() -> Reading:
            return store.now(), store.job_counts(), store.job_finished_by_minute(MINUTES)

        now, counts, finished = await d.store(cached.get, read)
        sampler.offer(now, counts)
        queues = sorted({queue for queue, _ in counts})
        totals = {state: 0 for state in STATES}
        by_queue = {queue: {state: 0 for state in STATES} for queue in queues}
        for (queue, state), n in counts.items():
            if state in totals:
                totals[state] += n
                by_queue[queue][state] += n
        return d.render(
            request, role, "overview.html", current="overview", states=STATES,
            totals=totals, by_queue=by_queue, total=sum(totals.values()),
            per_minute=charts.per_minute(finished, now, MINUTES),
            depth=charts.depth_over_time(sampler.samples(), now),
            live=True, poll=POLL_SECONDS,
        )  # fmt: skip

    return [Route("/", d.page(overview), methods=["GET"], name="overview")]
