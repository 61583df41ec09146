"""The services page: every service instance in the process table (name, address, host,
pid, status, uptime, requests served and errors, memory), and the services the app
registers that no instance runs, as down; live. Read-only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from offload.store.rules import GONE_AFTER_BEATS
from offload.types import ProcessInfo
from offload.views import service_list, stopped_long_ago
from offload.web.dashboard.core import Dashboard
from offload.web.dashboard.processes import STOPPED_SHOWN
from offload.web.security import Role


def routes(d: Dashboard) -> list[Route]:
    app = d.app

    async def services(request: Request, role: Role) -> Response:
        show_all = request.query_params.get("all") == "1"

        def read() -> tuple[float, list[ProcessInfo]]:
            rows = app.store.process_list(gone_after=GONE_AFTER_BEATS * app.settings.heartbeat)
            return app.store.now(), rows

        now, rows = await d.store(read)
        if not show_all:
            rows = [p for p in rows if not stopped_long_ago(p, now, STOPPED_SHOWN)]
        listed = service_list(rows, app.services, now)
        return d.render(
            request, role, "services.html", current="services", services=listed,
            show_all=show_all, live=True,
        )  # fmt: skip

    return [Route("/services", d.page(services), methods=["GET"], name="services")]
