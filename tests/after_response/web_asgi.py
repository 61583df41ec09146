"""A Starlette app with the ASGI hook, served by uvicorn in the tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from offload.integrations.asgi import AfterResponseMiddleware
from tests.after_response.apps import aadd_jobs, add_jobs, app


def plain(request: Request) -> Response:
    return PlainTextResponse("ok")


def after(request: Request) -> Response:
    q = request.query_params
    return JSONResponse(add_jobs(q["task"], q.get("args", "[]"), int(q.get("count", "1"))))


async def after_async(request: Request) -> Response:
    q = request.query_params
    described = await aadd_jobs(q["task"], q.get("args", "[]"), int(q.get("count", "1")))
    return JSONResponse(described)


async def after_stream(request: Request) -> Response:
    """Adds the jobs while the body is streamed, after the endpoint returned."""
    q = request.query_params

    async def body() -> AsyncIterator[bytes]:
        yield b"started\n"
        described = await aadd_jobs(q["task"], q.get("args", "[]"))
        yield (json.dumps(described) + "\n").encode()

    return StreamingResponse(body(), media_type="text/plain")


def job_state(request: Request) -> Response:
    """The state of a job, read by the server (for a store only the server can see)."""
    return JSONResponse({"state": app.get_job(request.query_params["id"]).state.value})


asgi_app = Starlette(
    routes=[
        Route("/plain", plain),
        Route("/after", after),
        Route("/after-async", after_async),
        Route("/after-stream", after_stream),
        Route("/job", job_state),
    ],
    middleware=[Middleware(AfterResponseMiddleware)],
)
