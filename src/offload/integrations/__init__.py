"""Hooks that let ``task.after_response(...)`` run a job once the HTTP response is sent.

Each module imports its framework (if any) only when it is imported itself; ``import
offload`` imports none of them.

* :mod:`offload.integrations.asgi`: ``AfterResponseMiddleware``, a pure ASGI middleware
  (Starlette, FastAPI, Django under ASGI, any ASGI app).
* :mod:`offload.integrations.wsgi`: ``AfterResponseMiddleware`` for WSGI apps (Flask,
  Bottle, Django under WSGI, any WSGI app).
* :mod:`offload.integrations.django`: ``AfterResponseMiddleware`` for Django's
  ``MIDDLEWARE`` setting, under WSGI or ASGI.

See ``docs/howto/after-response.md``.
"""
