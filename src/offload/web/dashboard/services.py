"""The services page: every service instance in the process table (name, address, host,
pid, status, uptime, requests served and errors, memory), and the services the app
registers that no instance runs, as down; live. Read-only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from offload.views import service_list
from offload.web.dashboard.core import Dashboard
from offload.web.dashboard.processes import listed_rows
from offload.web.security import Role


def routes(d: Dashboard) -> list[Route]:
    app = d.app

    async def services(request: Request, role: Role) -> Response:
        now, rows, show_all = await listed_rows(d, request)
        listed = service_list(rows, app.services, now)
        return d.render(
            request, role, "services.html", current="services", services=listed,
            show_all=show_all, live=True,
        )  # fmt: skip

    return [Route("/services", d.page(services), methods=["GET"], name="services")]
