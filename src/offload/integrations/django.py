"""The Django hook for ``task.after_response``: a middleware, under WSGI or ASGI.

Put it first in ``MIDDLEWARE``, so it wraps every other middleware's response::

    MIDDLEWARE = [
        "offload.integrations.django.AfterResponseMiddleware",
        "django.middleware.security.SecurityMiddleware",
        ...
    ]

Django closes the response once the server has sent it (the WSGI server calls the
response's ``close()``; Django's ASGI handler does the same after the last body chunk).
This middleware binds a :class:`~offload.after_response.RequestJobs` while the view
runs and wraps the response's ``close()``: the request's jobs are handed to the pool
after the original ``close()`` (and Django's ``request_finished`` signal) ran.

It works in sync and async middleware chains; only ``asgiref`` (a dependency of Django)
is imported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from offload.after_response import RequestJobs

__all__ = ["AfterResponseMiddleware"]


class AfterResponseMiddleware:
    """Runs the jobs a request added with ``task.after_response`` once its response is out."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self._acall(request)
        jobs = RequestJobs()
        with jobs:
            try:
                response = self.get_response(request)
            except BaseException:
                jobs.hand_over()
                raise
        return _hand_over_on_close(response, jobs)

    async def _acall(self, request: Any) -> Any:
        jobs = RequestJobs()
        get_response: Callable[[Any], Awaitable[Any]] = self.get_response
        with jobs:
            try:
                response = await get_response(request)
            except BaseException:
                jobs.hand_over()
                raise
        return _hand_over_on_close(response, jobs)


def _hand_over_on_close(response: Any, jobs: RequestJobs) -> Any:
    close: Callable[[], None] = response.close

    def close_then_hand_over() -> None:
        try:
            close()
        finally:
            jobs.hand_over()

    response.close = close_then_hand_over
    return response
