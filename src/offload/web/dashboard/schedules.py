"""The schedules page: every periodic schedule, as ``offload schedules`` lists it (its
expression and what it means, zone, catch-up policy, last fire and its job, next fire),
live. Read-only: schedules are declared in code."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from offload.types import FireRecord
from offload.views import schedule_list
from offload.web.dashboard.core import JOB_ID, Dashboard
from offload.web.security import Role


def routes(d: Dashboard) -> list[Route]:
    app = d.app

    async def schedules(request: Request, role: Role) -> Response:
        def read() -> tuple[float, dict[str, FireRecord]]:
            last = app.store.schedule_last_fires()
            return app.store.now(), last

        now, last = await d.store(read)
        rows: list[dict[str, Any]] = schedule_list(app.schedules, last, now)
        for row in rows:
            # A job id from the store is linked only if it has the shape ids are made in.
            job = row["last_job"]
            row["last_job_link"] = isinstance(job, str) and JOB_ID.match(job) is not None
            row["last_ago"] = None if row["last_fire_at"] is None else now - row["last_fire_at"]
            row["next_in"] = None if row["next_fire_at"] is None else row["next_fire_at"] - now
        return d.render(
            request, role, "schedules.html", current="schedules", schedules=rows,
            declared=bool(app.schedules), live=True,
        )  # fmt: skip

    return [Route("/schedules", d.page(schedules), methods=["GET"], name="schedules")]
