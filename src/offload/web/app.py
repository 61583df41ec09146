"""The web application: one Starlette app, mountable anywhere, safe by default.

Routes (relative to where it is mounted):

``GET /``, ``/jobs``, ``/jobs/{id}``, ``/processes``, ``/schedules``, ``/services``
    The operator's dashboard (:mod:`offload.web.dashboard`): the overview, the jobs,
    a job's detail, the process table, the schedules, the services; and the actions
    on jobs (``POST``, admin role, CSRF-checked), each confirmed first. Behind the
    credentials when any are configured.
``GET /status/{token}``
    A job's public status as JSON, for the user who holds the token
    (``job.status_token()``). An unknown, forged or expired token, or one for a job
    that no longer exists, gets 404 with one body, so ids cannot be probed.
``GET /static/offload-status.js``
    The helper a page loads to poll a status and draw a progress bar.
``GET /metrics``
    Prometheus metrics read from the store (see :mod:`offload.web.metrics`); behind the
    credentials when any are configured.

Every response passes the Host allowlist and carries the security headers of
:mod:`offload.web.security`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from offload.errors import ConfigError
from offload.web import tokens
from offload.web.security import (
    Authorize,
    Credentials,
    SecurityMiddleware,
    default_hosts,
    is_loopback,
    normalise_hosts,
)
from offload.web.status import MESSAGE_LIMIT, public_status

if TYPE_CHECKING:
    from offload.app import Offload

__all__ = ["create_app"]

#: The one body of every status answer that is not a status.
NOT_FOUND = {"error": "not found"}
_NO_STORE = {"cache-control": "no-store"}


def create_app(
    app: Offload,
    *,
    allowed_hosts: Sequence[str] | None = None,
    password: str | None = None,
    read_only_password: str | None = None,
    authorize: Authorize | None = None,
    metrics: bool = True,
    dashboard: bool = True,
) -> Starlette:
    """The web application for ``app``: the dashboard, the status endpoint, its helper
    script and ``/metrics``::

        web = create_app(app, allowed_hosts=["jobs.example.com"], password="...")

    ``allowed_hosts`` are the names clients may reach it by (``Host``); others get 400.
    Default: the loopback names (``localhost``, ``127.0.0.1``, ``::1``); ``["*"]``
    turns the check off (a proxy in front checks it).

    The dashboard and ``/metrics`` are behind the credentials: ``password`` gives the
    ``admin`` role (may retry, cancel, delete), ``read_only_password`` the ``read-only``
    role (sees everything, acts on nothing), both by HTTP basic authentication with any
    user name; ``authorize`` (``request -> True | "admin" | "read-only" | False |
    None``, sync or async) hands the decision to the host application's own login.
    Without any of them everyone is admin, so a host list that reaches beyond loopback
    requires one, or ``dashboard=False, metrics=False``. The status endpoint needs the
    ``secret`` setting and is public by design: the token is the credential.
    """
    hosts = default_hosts() if allowed_hosts is None else normalise_hosts(allowed_hosts)
    credentials = Credentials(password, authorize, read_only_password)
    guarded = [name for name, on in (("the dashboard", dashboard), ("/metrics", metrics)) if on]
    if guarded and not credentials.configured and not all(is_loopback(h) for h in hosts):
        beyond = ", ".join(sorted(h for h in hosts if not is_loopback(h)))
        raise ConfigError(
            f"allowed_hosts reach beyond loopback ({beyond}) but {' and '.join(guarded)} "
            "have no credentials: pass password=... or authorize=..., or "
            "dashboard=False and metrics=False"
        )
    secret = app.settings.secret

    def status(request: Request) -> Response:
        job_id = tokens.verify(request.path_params["token"], secret) if secret else None
        row = app.store.job_get(job_id) if job_id is not None else None
        if row is None:
            return JSONResponse(NOT_FOUND, status_code=404, headers=_NO_STORE)
        messages = app.store.job_messages(row.id, MESSAGE_LIMIT)
        return JSONResponse(public_status(row, messages), headers=_NO_STORE)

    routes: list[Route | Mount] = [
        Route("/status/{token}", status, methods=["GET"]),
        Mount("/static", StaticFiles(packages=[("offload.web", "static")]), name="static"),
    ]
    if dashboard:
        from offload.web.dashboard import routes as dashboard_routes

        routes.extend(dashboard_routes(app, credentials))
    if metrics:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from offload.web.metrics import registry_for

        registry = registry_for(app)

        async def metrics_endpoint(request: Request) -> Response:
            if not await credentials.allows(request):
                challenge = {"www-authenticate": 'Basic realm="offload"'}
                return JSONResponse(
                    {"error": "unauthorized"},
                    status_code=401 if credentials.basic else 403,
                    headers={**_NO_STORE, **(challenge if credentials.basic else {})},
                )
            body = await run_in_threadpool(generate_latest, registry)
            return Response(body, media_type=CONTENT_TYPE_LATEST, headers=_NO_STORE)

        routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse(NOT_FOUND, status_code=404, headers=_NO_STORE)

    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, allowed_hosts=hosts)],
        exception_handlers={404: not_found},
    )
