"""Shared CLI plumbing: finding the app, exit codes, error display."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click

from offload.app import Offload
from offload.errors import ConfigError, OffloadError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def load_app(spec: str | None, url: str | None = None) -> Offload:
    """The app named by ``module:attr`` (or ``OFFLOAD_APP``), else a bare app on the URL.

    A bare app knows no tasks: enough for ``ps``, ``jobs`` and ``migrate``.
    """
    spec = spec or os.environ.get("OFFLOAD_APP")
    if not spec:
        return Offload(url) if url else Offload()
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--app: expected 'module:attribute', got {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`, find modules in the cwd
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--app {spec!r}: cannot import {module_name!r}: {exc}") from exc
    except Exception as exc:  # the app module itself raised (or has a syntax error)
        raise ConfigError(
            f"--app {spec!r}: importing {module_name!r} raised {_describe(exc)}"
        ) from exc
    if not hasattr(module, attr):
        raise ConfigError(f"--app {spec!r}: module {module_name!r} has no attribute {attr!r}")
    app = getattr(module, attr)
    if not isinstance(app, Offload):
        raise ConfigError(
            f"--app {spec!r}: {module_name}.{attr} is {type(app).__name__}, not an Offload app"
        )
    if url:
        app.settings = app.settings.replace(url=url)
        app.close()
    return app


def _describe(exc: BaseException) -> str:
    """``SyntaxError: invalid syntax (jobs.py, line 3)``: an error and where it happened."""
    text = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, SyntaxError):
        frames = traceback.extract_tb(exc.__traceback__)
        if frames:
            text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


#: What a command that runs jobs says when it was given no app.
NO_APP = (
    "no app given: pass --app module:attribute (the Offload app that registers your "
    "tasks, e.g. --app myproject.jobs:app) or set OFFLOAD_APP"
)


def app_options(fn: F) -> F:
    """``--app`` and ``--url`` for a command; the command receives ``app``."""
    return _with_app(fn, required=False)


def required_app_options(fn: F) -> F:
    """Like :func:`app_options`, for commands that run jobs: without an app they could
    claim nothing, so they exit 2 instead of running idle."""
    return _with_app(fn, required=True)


def _with_app(fn: F, *, required: bool) -> F:
    @click.option("--app", "app_spec", envvar="OFFLOAD_APP", help="module:attribute of the app")
    @click.option("--url", envvar="OFFLOAD_URL", help="store URL (overrides the app's)")
    @functools.wraps(fn)
    def wrapper(*args: Any, app_spec: str | None, url: str | None, **kwargs: Any) -> Any:
        if required and not app_spec:
            raise click.UsageError(NO_APP)
        try:
            app = load_app(app_spec, url)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from exc
        try:
            return fn(*args, app=app, **kwargs)
        finally:
            # Close the store (a PostgreSQL pool) here rather than leave it to the
            # garbage collector, which tears pools down noisily at exit.
            app.close()

    return wrapper  # type: ignore[return-value]


def fail(message: str) -> None:
    """Print an error and exit 1."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_FAILED)


def handle_errors(fn: F) -> F:
    """Turn OffloadError into a one-line message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from exc
        except OffloadError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]
