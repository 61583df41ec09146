"""The web application mounted under ``/ops`` of a host Starlette application whose own
login (here: the ``x-test-user`` header) decides each user's role through ``authorize``.
Run by uvicorn in the tests: ``uvicorn tests.web.mounted:host``."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from offload.web import create_app
from offload.web.security import Verdict
from tests.web.apps import app

ROLES: dict[str, Verdict] = {"ada": "admin", "bob": "read-only", "cy": True, "eve": False}


def by_header(request: Request) -> Verdict:
    return ROLES.get(request.headers.get("x-test-user", ""))


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the host application")


host = Starlette(
    routes=[
        Route("/", home),
        Mount("/ops", app=create_app(app, authorize=by_header)),
    ]
)
