"""The groups pages: the list, newest first with keyset paging (as the jobs list: a page
is the ``limit`` newest groups older than the last id of the page before, never an
offset), and a group's detail. Both only show; nothing on them acts.

Each group is shown as :func:`offload.views.group_dict` has it (what ``offload groups
--json`` prints), with its progress drawn as a ``<progress>`` element.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from offload.types import GroupRow, GroupState
from offload.views import group_dict
from offload.web.dashboard.core import JOB_ID, BadRequest, Dashboard
from offload.web.security import Role

#: Groups on one page of the list.
PAGE = 50


def group_id_of(value: str | None) -> str:
    """A group id from a path or a query, checked; BadRequest (404) otherwise."""
    if value is None or not JOB_ID.match(value):
        raise BadRequest(f"no group with id {value!r}"[:300], 404)
    return value


def group_view(row: GroupRow) -> dict[str, Any]:
    """A group as the templates show it: :func:`group_dict` and its ``percent`` done."""
    data = group_dict(row)
    data["percent"] = 100.0 * row.done / row.total if row.total else None
    return data


def routes(d: Dashboard) -> list[Route]:
    store = d.app.store

    async def group_list(request: Request, role: Role) -> Response:
        text = request.query_params.get("before", "").strip()
        before = group_id_of(text) if text else None
        # One more than a page: whether an older page exists, without counting.
        rows: list[GroupRow] = await d.store(
            lambda: store.group_list(limit=PAGE + 1, before_id=before)
        )
        older = rows[PAGE - 1].id if len(rows) > PAGE else None
        shown = rows[:PAGE]
        return d.render(
            request, role, "groups.html", current="groups",
            rows=[group_view(r) for r in shown], before=before, older=older,
            live=any(r.state is not GroupState.COMPLETE for r in shown),
        )  # fmt: skip

    async def group_page(request: Request, role: Role) -> Response:
        group_id = group_id_of(request.path_params["group_id"])

        def read() -> dict[str, Any] | None:
            row = store.group_get(group_id)
            if row is None:
                return None
            previous = store.group_get(row.after) if row.after else None
            callback = store.job_get(row.callback_id) if row.callback_id else None
            return {
                "group": group_view(row),
                "previous": group_view(previous) if previous is not None else None,
                "callback_stored": callback is not None,
                "live": row.state is not GroupState.COMPLETE,
            }

        found = await d.store(read)
        if found is None:
            raise BadRequest(f"no group with id {group_id}", 404)
        return d.render(request, role, "group.html", current="groups", **found)

    return [
        Route("/groups", d.page(group_list), methods=["GET"], name="groups"),
        Route("/groups/{group_id}", d.page(group_page), methods=["GET"]),
    ]
