"""A Flask app with the WSGI hook, served by werkzeug or gunicorn in the tests."""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue

from offload.integrations.wsgi import AfterResponseMiddleware
from tests.after_response.apps import add_jobs

flask_app = Flask(__name__)


@flask_app.get("/plain")
def plain() -> ResponseReturnValue:
    return "ok"


@flask_app.get("/after")
def after() -> ResponseReturnValue:
    q = request.args
    return jsonify(add_jobs(q["task"], q.get("args", "[]"), int(q.get("count", "1"))))


@flask_app.get("/after-stream")
def after_stream() -> ResponseReturnValue:
    """Adds the jobs while the body is produced, after the view returned."""
    q = request.args
    task, args = q["task"], q.get("args", "[]")

    def body() -> Iterator[str]:
        yield "started\n"
        yield json.dumps(add_jobs(task, args)) + "\n"

    return Response(body(), mimetype="text/plain")


flask_app.wsgi_app = AfterResponseMiddleware(flask_app.wsgi_app)  # type: ignore[method-assign]
