"""The jobs pages: the list (filters, search by id, keyset paging), a job's detail, and
the actions on jobs (retry, cancel, delete, retry every failed job of a filter), each
confirmed on a page of its own before it is done.

Paging never counts or skips rows: a page is the ``limit`` newest jobs older than the
last id of the page before (ids are time-ordered), which the store reads from an index
however many jobs it holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from offload.types import ErrorInfo, JobFilter, JobRow, JobState
from offload.views import job_detail, job_dict
from offload.web.dashboard.core import BadRequest, Dashboard, job_id_of, name_of
from offload.web.security import Role

#: Jobs on one page of the list.
PAGE = 50
#: Failed jobs retried per store call by "retry every failed job".
RETRY_BATCH = 500
#: Messages shown on a job's page (the newest).
MESSAGES = 1000
ACTIONS = ("retry", "cancel", "delete")

#: What an action did, by the code its redirect carries (nothing else is ever shown).
DONE = {
    "retried": "Retried: the job is queued to run again.",
    "not-retried": "Not retried: only a finished job can be (or another job holds its unique key).",
    "cancelled": "Cancelled.",
    "cancel-requested": "Cancel requested: the worker stops the job at its next check.",
    "not-cancelled": "Not cancelled: the job has already finished.",
    "deleted": "Deleted the job and its history.",
    "not-deleted": "Not deleted: a running job cannot be (cancel it first).",
    "bulk": "Retried the failed jobs of this filter.",
}


def job_filter(params: Mapping[str, str], limit: int = PAGE) -> JobFilter:
    """The filter a query or a form asks for, checked."""
    text = params.get("state", "").strip()
    try:
        state = JobState(text) if text else None
    except ValueError:
        names = ", ".join(s.value for s in JobState)
        raise BadRequest(f"state: expected one of {names}, got {text[:40]!r}") from None
    before = params.get("before", "").strip() or None
    if before is not None:
        before = job_id_of(before)
    return JobFilter(
        state=state, queue=name_of(params, "queue"), task=name_of(params, "task"),
        limit=limit, before_id=before,
    )  # fmt: skip


def filter_query(f: JobFilter) -> dict[str, str]:
    """The query parameters of a filter (its page left out)."""
    out = {"state": f.state.value if f.state else "", "queue": f.queue or "", "task": f.task or ""}
    return {k: v for k, v in out.items() if v}


def pretty(value: Any) -> str:
    """A decoded payload as indented JSON (text that was not JSON stays as it is)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def actions_for(row: JobRow) -> list[str]:
    """The actions that make sense for a job in its state."""
    out = []
    if row.state.finished:
        out.append("retry")
    if not row.state.finished and not row.cancel_requested:
        out.append("cancel")
    if row.state is not JobState.RUNNING:
        out.append("delete")
    return out


def routes(d: Dashboard) -> list[Route]:
    store = d.app.store

    async def job_list(request: Request, role: Role) -> Response:
        params = request.query_params
        wanted = params.get("id", "").strip()
        if wanted:
            row = await d.store(store.job_get, wanted) if len(wanted) <= 200 else None
            if row is not None:
                return d.redirect(request, f"/jobs/{row.id}")
            return d.render(
                request, role, "jobs.html", status=404, current="jobs",
                rows=[], filter=JobFilter(), query={}, older=None, live=False,
                states=[s.value for s in JobState], searched=wanted, done=None, bulk=None,
            )  # fmt: skip
        f = job_filter(params)
        # One more than a page: whether an older page exists, without counting.
        rows: list[JobRow] = await d.store(store.job_list, _with_limit(f, f.limit + 1))
        older = rows[f.limit - 1].id if len(rows) > f.limit else None
        return d.render(
            request, role, "jobs.html", current="jobs",
            rows=[job_dict(r) for r in rows[: f.limit]], filter=f, query=filter_query(f),
            older=older, live=f.before_id is None, states=[s.value for s in JobState],
            searched=None, done=DONE.get(params.get("done", "")), bulk=_count(params.get("n")),
        )  # fmt: skip

    async def job_page(request: Request, role: Role) -> Response:
        job_id = job_id_of(request.path_params["job_id"])

        def read() -> dict[str, Any] | None:
            row = store.job_get(job_id)
            if row is None:
                return None
            detail = job_detail(row, store.job_events(job_id), store.job_messages(job_id, MESSAGES))
            error = ErrorInfo.from_json(row.error)
            return {
                "row": row, "job": detail, "error": error, "actions": actions_for(row),
                "group_id": store.group_of_job(job_id),
            }  # fmt: skip

        found = await d.store(read)
        if found is None:
            raise BadRequest(f"no job with id {job_id}", 404)
        job = found["job"]
        return d.render(
            request, role, "job.html", current="jobs", **found,
            args=pretty(job["args"]), kwargs=pretty(job["kwargs"]),
            result=None if job["result"] is None else pretty(job["result"]),
            saved=pretty(job["saved"]) if job["saved"] not in ({}, None) else None,
            options=pretty(job["options"]),
            live=not found["row"].state.finished,
            done=DONE.get(request.query_params.get("done", "")),
        )  # fmt: skip

    async def confirm(request: Request, role: Role) -> Response:
        job_id = job_id_of(request.path_params["job_id"])
        action = request.path_params["action"]
        if action not in ACTIONS:
            raise BadRequest(f"no action {action[:40]!r}", 404)
        row = await d.store(store.job_get, job_id)
        if row is None:
            raise BadRequest(f"no job with id {job_id}", 404)
        return d.render(
            request, role, "confirm.html", current="jobs", action=action, job=job_dict(row),
            target=f"/jobs/{job_id}/{action}", cancel_to=f"/jobs/{job_id}", fields={},
        )  # fmt: skip

    async def act(request: Request, form: dict[str, str]) -> Response:
        job_id = job_id_of(request.path_params["job_id"])
        action = request.path_params["action"]
        if action == "retry":
            done = "retried" if await d.store(store.job_retry, [job_id]) else "not-retried"
        elif action == "cancel":
            who = f"the dashboard (from {request.client.host if request.client else 'unknown'})"
            states: dict[str, JobState] = await d.store(lambda: store.job_cancel([job_id], by=who))
            if job_id not in states:
                raise BadRequest(f"no job with id {job_id}", 404)
            after = states[job_id]
            done = {JobState.CANCELLED: "cancelled", JobState.RUNNING: "cancel-requested"}.get(
                after, "not-cancelled"
            )
        elif action == "delete":
            if await d.store(store.job_delete, [job_id]):
                return d.redirect(request, "/jobs", done="deleted")
            done = "not-deleted"
        else:
            raise BadRequest(f"no action {action[:40]!r}", 404)
        return d.redirect(request, f"/jobs/{job_id}", done=done)

    async def confirm_bulk(request: Request, role: Role) -> Response:
        f = job_filter(request.query_params)
        fields = {k: v for k, v in filter_query(f).items() if k != "state"}
        return d.render(
            request, role, "confirm.html", current="jobs", action="retry-failed", job=None,
            filter=f, target="/jobs/retry-failed", fields=fields,
            cancel_to="/jobs?" + urlencode({**fields, "state": "failed"}),
        )  # fmt: skip

    async def retry_failed(request: Request, form: dict[str, str]) -> Response:
        f = job_filter(form, RETRY_BATCH)
        f = JobFilter(state=JobState.FAILED, queue=f.queue, task=f.task, limit=RETRY_BATCH)

        def run() -> int:
            retried = 0
            cursor: str | None = None
            while True:
                page = store.job_list(_with_before(f, cursor))
                if not page:
                    return retried
                retried += len(store.job_retry([r.id for r in page]))
                cursor = page[-1].id

        n = await d.store(run)
        query = {**filter_query(f), "done": "bulk", "n": str(n)}
        return d.redirect(request, "/jobs", **query)

    return [
        Route("/jobs", d.page(job_list), methods=["GET"], name="jobs"),
        Route("/jobs/retry-failed", d.page(confirm_bulk), methods=["GET"]),
        Route("/jobs/retry-failed", d.action(retry_failed), methods=["POST"]),
        Route("/jobs/{job_id}", d.page(job_page), methods=["GET"]),
        Route("/jobs/{job_id}/{action}", d.page(confirm), methods=["GET"]),
        Route("/jobs/{job_id}/{action}", d.action(act), methods=["POST"]),
    ]


def _with_limit(f: JobFilter, limit: int) -> JobFilter:
    return JobFilter(state=f.state, queue=f.queue, task=f.task, limit=limit, before_id=f.before_id)


def _with_before(f: JobFilter, before: str | None) -> JobFilter:
    return JobFilter(state=f.state, queue=f.queue, task=f.task, limit=f.limit, before_id=before)


def _count(text: str | None) -> int | None:
    """The number of jobs a bulk action reports in its redirect, if it is one."""
    return int(text) if text is not None and text.isdigit() and len(text) <= 12 else None
