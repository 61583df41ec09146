"""The web application inside a Flask application through a2wsgi, under ``/ops``,
behind an admin password. Run by gunicorn in the tests:
``gunicorn tests.web.flask_mounted:flask_app``."""

from __future__ import annotations

import os

from a2wsgi import ASGIMiddleware
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from offload.web import create_app
from tests.web.apps import app

flask_app = Flask(__name__)


@flask_app.get("/")
def home() -> str:
    return "the flask application"


dashboard = ASGIMiddleware(create_app(app, password=os.environ["OFFLOAD_WEB_PASSWORD"]))
flask_app.wsgi_app = DispatcherMiddleware(flask_app.wsgi_app, {"/ops": dashboard})
