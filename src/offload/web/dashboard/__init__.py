"""The operator's dashboard: server-drawn pages (Jinja2, autoescaped), live by htmx
polling, with actions behind a CSRF token, Origin and Sec-Fetch-Site checks and the
admin role.

Each page is a module with ``routes(d)``; :func:`routes` puts them together, and
:data:`core.NAV` lists the pages of the navigation bar. A new page is one more module
and one more entry there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import Route

from offload.web.csrf import CSRF
from offload.web.dashboard import groups, jobs, overview, processes, schedules, services
from offload.web.dashboard.core import Dashboard
from offload.web.security import Credentials

if TYPE_CHECKING:
    from offload.app import Offload

#: The page modules, in the order their routes are tried.
PAGES = (overview, jobs, groups, processes, schedules, services)


def routes(app: Offload, credentials: Credentials) -> list[Route]:
    """Every dashboard route for ``app``."""
    d = Dashboard(app, credentials, CSRF(app.settings.secret))
    out: list[Route] = []
    for page in PAGES:
        out.extend(page.routes(d))
    return out
