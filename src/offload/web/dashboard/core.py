"""What every dashboard page shares: the templates, who is asking and in which role, the
CSRF cookie, the navigation, and the checks on what a request asks for.

A page module (``overview.py``, ``jobs.py``, ``groups.py``, ``processes.py``,
``schedules.py``, ``services.py``) exposes ``routes(d)``
returning its Starlette routes, and adds an entry to :data:`NAV` when it has a page of
its own; :func:`offload.web.dashboard.routes` puts them together.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from offload.errors import StoreError
from offload.web.csrf import COOKIE, CSRF, FIELD
from offload.web.security import ADMIN, Credentials, Role

if TYPE_CHECKING:
    from offload.app import Offload


@dataclass(frozen=True)
class NavEntry:
    """One link of the navigation bar: its label, its path and the route name pages use
    to say they are that entry."""

    label: str
    path: str
    name: str


#: The navigation bar, in order. A new page joins here, with a route module of its own.
NAV: list[NavEntry] = [
    NavEntry("Overview", "/", "overview"),
    NavEntry("Jobs", "/jobs", "jobs"),
    NavEntry("Groups", "/groups", "groups"),
    NavEntry("Processes", "/processes", "processes"),
    NavEntry("Schedules", "/schedules", "schedules"),
    NavEntry("Services", "/services", "services"),
]

#: A job id as the dashboard accepts it in a path or a form (the shape ids are made in).
JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
#: Longest queue or task name accepted in a filter.
MAX_NAME = 200
#: Largest form body an action accepts.
MAX_FORM = 16 * 1024
#: Seconds between two refreshes of a live page.
POLL_SECONDS = 2

_NO_STORE = {"cache-control": "no-store"}

Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    """A request the dashboard cannot serve, with the text that says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Dashboard:
    """The dashboard's state: the app, its credentials, the CSRF key and templates."""

    def __init__(self, app: Offload, credentials: Credentials, csrf: CSRF) -> None:
        self.app = app
        self.credentials = credentials
        self.csrf = csrf
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("offload.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = format_time
        self.templates.filters["seconds"] = format_seconds
        self.templates.filters["bytes"] = format_bytes
        self.templates.filters["number"] = format_number

    # -- who is asking -----------------------------------------------------------------
    def page(self, handler: Callable[[Request, Role], Awaitable[Response]]) -> Handler:
        """``handler`` behind the credentials: called with the caller's role."""

        async def guarded(request: Request) -> Response:
            role = await self.credentials.role(request)
            if role is None:
                return self.refused(request)
            try:
                return await handler(request, role)
            except BadRequest as exc:
                return self.error(request, role, exc.message, exc.status)
            except StoreError as exc:
                return self.error(request, role, f"the store did not answer: {exc}", 503)

        return guarded

    def action(self, handler: Callable[[Request, dict[str, str]], Awaitable[Response]]) -> Handler:
        """A ``POST`` ``handler`` for admins only, after the CSRF, Origin and
        Sec-Fetch-Site checks; called with the form's fields."""

        async def guarded(request: Request) -> Response:
            role = await self.credentials.role(request)
            if role is None:
                return self.refused(request)
            if role != ADMIN:
                return self.error(request, role, "read-only: this user may not act", 403)
            try:
                form = await read_form(request)
            except BadRequest as exc:
                return self.error(request, role, exc.message, exc.status)
            why = self.csrf.refusal(request, form.get(FIELD))
            if why is not None:
                return self.error(request, role, why, 403)
            try:
                return await handler(request, form)
            except BadRequest as exc:
                return self.error(request, role, exc.message, exc.status)
            except StoreError as exc:
                return self.error(request, role, f"the store did not answer: {exc}", 503)

        return guarded

    def refused(self, request: Request) -> Response:
        headers = dict(_NO_STORE)
        if self.credentials.basic:
            headers["www-authenticate"] = 'Basic realm="offload"'
        status = 401 if self.credentials.basic else 403
        body = "<!doctype html><title>offload</title><p>Sign in to see the dashboard.</p>"
        return HTMLResponse(body, status_code=status, headers=headers)

    # -- drawing -------------------------------------------------------------------------
    def render(
        self,
        request: Request,
        role: Role,
        template: str,
        *,
        status: int = 200,
        **context: Any,
    ) -> Response:
        """``template`` drawn with ``context`` and what every page has (navigation, the
        role, the CSRF token, where the dashboard is mounted)."""
        cookie = self.csrf.cookie_of(request)
        fresh = cookie is None
        if cookie is None:
            cookie = self.csrf.new_cookie()
        root = request.scope.get("root_path", "")
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        context.setdefault("live", False)
        context.setdefault("poll", POLL_SECONDS)
        body = self.templates.get_template(template).render(
            nav=NAV,
            root=root,
            role=role,
            admin=role == ADMIN,
            csrf_field=FIELD,
            csrf_token=self.csrf.token(cookie),
            here=here,
            **context,
        )
        response = HTMLResponse(body, status_code=status, headers=_NO_STORE)
        if fresh:
            response.set_cookie(
                COOKIE, cookie, path=(root or "") + "/", httponly=True, samesite="strict",
                secure=request.url.scheme == "https",
            )  # fmt: skip
        return response

    def error(self, request: Request, role: Role, message: str, status: int) -> Response:
        return self.render(request, role, "error.html", status=status, current="", message=message)

    def redirect(self, request: Request, path: str, **query: str) -> Response:
        """303 to ``path`` of the dashboard (after an action: a reload does not repeat it)."""
        root = request.scope.get("root_path", "")
        suffix = ("?" + urlencode(query)) if query else ""
        return RedirectResponse(root + path + suffix, status_code=303, headers=_NO_STORE)

    async def store(self, call: Callable[..., Any], *args: Any) -> Any:
        """Run a store call in a thread, so the event loop never waits on the database."""
        return await run_in_threadpool(call, *args)


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (each field once)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise BadRequest("form too large", 413)
    if kind != "application/x-www-form-urlencoded" and (kind or body):
        raise BadRequest("expected a form (application/x-www-form-urlencoded)", 415)
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"unreadable form: {exc}") from exc
    out: dict[str, str] = {}
    for name, values in fields.items():
        if len(values) != 1:
            raise BadRequest(f"form field {name!r} given {len(values)} times")
        out[name] = values[0]
    return out


def job_id_of(value: str | None) -> str:
    """A job id from a path or a form, checked; BadRequest (404) otherwise."""
    if value is None or not JOB_ID.match(value):
        raise BadRequest(f"no job with id {value!r}"[:300], 404)
    return value


def name_of(params: Mapping[str, str], key: str) -> str | None:
    """A queue or task name from the query or a form: None when absent or empty."""
    value = params.get(key, "").strip()
    if not value:
        return None
    if len(value) > MAX_NAME or any(not c.isprintable() for c in value):
        raise BadRequest(f"{key}: expected a name of at most {MAX_NAME} printable characters")
    return value


def format_time(value: float | None) -> str:
    """A stored time as UTC text (``2026-12-01 14:30:05``); ``-`` for none."""
    import datetime as dt

    if value is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(float(value), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return str(value)


def format_number(value: float | int | None) -> str:
    """A progress figure: whole numbers without a fraction, others to two places."""
    if value is None:
        return "-"
    value = float(value)
    return f"{value:.0f}" if value.is_integer() else f"{value:.2f}".rstrip("0")


def format_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    value = float(value)
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def format_bytes(value: int | float | None) -> str:
    if not value:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
