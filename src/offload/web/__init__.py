"""offload's web application: the operator's dashboard, the end-user status endpoint
and Prometheus metrics.

Install the extra (``pip install 'offload[web]'``), then mount it in a Starlette or
FastAPI application, or run it alone with ``offload web``::

    from offload.web import create_app

    web = create_app(app, allowed_hosts=["example.com"], password="a long password")
    main_app.mount("/offload", web)       # /offload/ the dashboard, /offload/status/{token}

The core never imports this package; ``job.status_token()`` uses only
:mod:`offload.web.tokens`, which needs nothing but the standard library. Starlette,
Jinja2 and prometheus-client load when :func:`create_app` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from offload.web.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from offload.web.app import create_app

        return create_app
    raise AttributeError(f"module 'offload.web' has no attribute {name!r}")
