"""Checked by mypy (test_types.py): ``after_response`` keeps the task's parameters and
result type, and the integrations fit their frameworks' own types."""

from __future__ import annotations

from typing import assert_type

from flask import Flask
from starlette.applications import Starlette
from starlette.middleware import Middleware

from offload import Job, JobContext, Offload
from offload.integrations import asgi, wsgi

app = Offload("sqlite:///typing.db")


@app.task
def add(a: int, b: int) -> int:
    return a + b


@app.task(context=True)
def export(ctx: JobContext, month: str) -> list[str]:
    return [month]


@app.task
async def fetch(url: str) -> bytes:
    return b""


assert_type(add.after_response(1, 2), Job[int])
assert_type(export.after_response("2026-11"), Job[list[str]])
assert_type(fetch.using(queue="web").after_response("u"), Job[bytes])
add.after_response("1", 2)  # type: ignore[arg-type]


async def view() -> None:
    assert_type(await add.aafter_response(1, b=2), Job[int])


starlette_app = Starlette(middleware=[Middleware(asgi.AfterResponseMiddleware)])
wrapped = asgi.AfterResponseMiddleware(starlette_app)
flask_app = Flask(__name__)
flask_app.wsgi_app = wsgi.AfterResponseMiddleware(flask_app.wsgi_app)  # type: ignore[method-assign]
