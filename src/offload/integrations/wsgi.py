"""The WSGI hook for ``task.after_response``: Flask, Bottle, any WSGI application.

It imports no framework::

    from offload.integrations.wsgi import AfterResponseMiddleware

    flask_app.wsgi_app = AfterResponseMiddleware(flask_app.wsgi_app)   # Flask
    application = AfterResponseMiddleware(application)                 # any WSGI app

For each request it binds a :class:`~offload.after_response.RequestJobs` (also in
``environ["offload.after_response"]``) while the application runs and while its body is
produced, and wraps the body: the server calls the body's ``close()`` once the response
has been written, and that is when the request's jobs are handed to the pool. A server's
``wsgi.file_wrapper`` shortcut is not used for the wrapped body.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from offload.after_response import RequestJobs

__all__ = ["ENVIRON_KEY", "AfterResponseMiddleware"]

#: The environ key holding the request's :class:`~offload.after_response.RequestJobs`.
ENVIRON_KEY = "offload.after_response"


class AfterResponseMiddleware:
    """Runs the jobs a request added with ``task.after_response`` once its response is out.

    >>> flask_app.wsgi_app = AfterResponseMiddleware(flask_app.wsgi_app)
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        jobs = RequestJobs()
        environ[ENVIRON_KEY] = jobs
        # One context for the call and for every step of the body, so code that runs
        # while a streamed body is produced is inside the request too.
        context = contextvars.copy_context()
        context.run(jobs.bind)
        try:
            body = context.run(self.app, environ, start_response)
        except BaseException:
            jobs.hand_over()
            raise
        return _Body(body, jobs, context)


class _Body:
    """The application's body; ``close()`` closes it, then hands the jobs over."""

    def __init__(
        self, body: Iterable[bytes], jobs: RequestJobs, context: contextvars.Context
    ) -> None:
        self._body = body
        self._jobs = jobs
        self._context = context
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = self._context.run(iter, self._body)
        return self._context.run(next, self._iterator)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                self._context.run(close)
        finally:
            self._jobs.hand_over()
