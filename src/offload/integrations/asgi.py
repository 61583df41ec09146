"""The ASGI hook for ``task.after_response``: Starlette, FastAPI, any ASGI application.

A pure ASGI middleware; it imports no framework::

    from starlette.middleware import Middleware
    from offload.integrations.asgi import AfterResponseMiddleware

    app = Starlette(routes=routes, middleware=[Middleware(AfterResponseMiddleware)])
    app = FastAPI(); app.add_middleware(AfterResponseMiddleware)
    application = AfterResponseMiddleware(application)       # any ASGI app

For each HTTP request it binds a :class:`~offload.after_response.RequestJobs` (also put
in the scope as ``scope["offload.after_response"]``) while the application runs, and
hands the request's jobs to the pool once the final body message (``more_body`` false)
has been sent, or when the application returns without completing the response.
WebSocket scopes pass through untouched. At the lifespan shutdown (the server is
stopping) it stops this process's pools before the application's shutdown completes:
running jobs get ``after_response_grace`` seconds, then are requeued for a worker. An
application that does not support lifespan (Django's) gets it from the middleware, so
wrapping Django's ASGI application is the way to a graceful stop under uvicorn::

    application = AfterResponseMiddleware(get_asgi_application())
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from offload import after_response
from offload.after_response import RequestJobs

__all__ = ["SCOPE_KEY", "AfterResponseMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The scope key holding the request's :class:`~offload.after_response.RequestJobs`.
SCOPE_KEY = "offload.after_response"


class AfterResponseMiddleware:
    """Runs the jobs a request added with ``task.after_response`` once its response is out.

    >>> application = AfterResponseMiddleware(application)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        jobs = RequestJobs()

        async def send_then_hand_over(message: Message) -> None:
            await send(message)
            if _ends_response(message):
                jobs.hand_over()

        token = jobs.bind()
        try:
            await self.app({**scope, SCOPE_KEY: jobs}, receive, send_then_hand_over)
        finally:
            RequestJobs.unbind(token)
            # Once the application is done the response is complete, or never will be
            # (an error, a client gone): the jobs are stored either way.
            jobs.hand_over()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        received: list[Message] = []
        sent = False

        async def receive_noting() -> Message:
            message = await receive()
            received[:] = [message]
            return message

        async def send_after_stopping_pools(message: Message) -> None:
            nonlocal sent
            sent = True
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await _stop_pools()
            await send(message)

        try:
            await self.app(scope, receive_noting, send_after_stopping_pools)
        except Exception:
            if sent:
                raise
            # The application does not speak lifespan (Django's ASGIHandler raises on
            # it, and servers then carry on without): speak it alone, for the pools.
            await _lifespan_alone(receive, send, received[0] if received else None)


async def _stop_pools() -> None:
    # Some servers (uvicorn) end the process by re-raising SIGTERM once the lifespan
    # shutdown is over, so atexit handlers never run: the pools are stopped here.
    await asyncio.to_thread(after_response.shutdown)


async def _lifespan_alone(receive: Receive, send: Send, first: Message | None) -> None:
    message = first or await receive()
    while True:
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await _stop_pools()
            await send({"type": "lifespan.shutdown.complete"})
            return
        message = await receive()


def _ends_response(message: Message) -> bool:
    kind = message["type"]
    if kind in ("http.response.body", "http.response.zerocopysend"):
        return not message.get("more_body", False)
    return bool(kind == "http.response.pathsend")
