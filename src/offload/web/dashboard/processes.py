"""The processes page: the table ``offload ps`` prints (supervisors with their children,
drains), live."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from offload.store.rules import GONE_AFTER_BEATS
from offload.types import ProcessInfo
from offload.views import process_dict, stopped_long_ago, tree_order
from offload.web.dashboard.core import Dashboard
from offload.web.security import Role

#: Stopped processes are listed for this long after they stopped (as ``offload ps``).
STOPPED_SHOWN = 300.0


async def listed_rows(d: Dashboard, request: Request) -> tuple[float, list[ProcessInfo], bool]:
    """The store's now, the process rows a page lists (those stopped long ago only with
    ``?all=1``) and whether all were asked for: the processes and services pages."""
    app = d.app
    show_all = request.query_params.get("all") == "1"

    def read() -> tuple[float, list[ProcessInfo]]:
        rows = app.store.process_list(gone_after=GONE_AFTER_BEATS * app.settings.heartbeat)
        return app.store.now(), rows

    now, rows = await d.store(read)
    if not show_all:
        rows = [p for p in rows if not stopped_long_ago(p, now, STOPPED_SHOWN)]
    return now, rows, show_all


def routes(d: Dashboard) -> list[Route]:
    async def processes(request: Request, role: Role) -> Response:
        now, rows, show_all = await listed_rows(d, request)
        listed: list[dict[str, Any]] = [process_dict(p, now) for p in tree_order(rows)]
        return d.render(
            request, role, "processes.html", current="processes", processes=listed,
            show_all=show_all, live=True,
        )  # fmt: skip

    return [Route("/processes", d.page(processes), methods=["GET"], name="processes")]
