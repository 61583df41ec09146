"""A progress bar for the user who clicked "export": a Starlette app that starts an export
job from a form and shows its progress, polled from offload's status endpoint.

    OFFLOAD_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') \\
        uvicorn examples.status_page:web

then open http://127.0.0.1:8000/ and click "export". The job runs in the web process
once the response is sent (``after_response``); with ``offload worker --app
examples.status_page:app`` running, a worker takes the jobs the web process has no
thread for. Nothing on the pages is inline script: the page loads
``/offload/static/offload-status.js``, which finds the ``data-offload-status`` element.
"""

from __future__ import annotations

import html
import os
import secrets
import time
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from offload import JobContext, Offload
from offload.integrations.asgi import AfterResponseMiddleware
from offload.web import create_app
from offload.web.security import SecurityMiddleware, default_hosts

# The secret signs status tokens. Without OFFLOAD_SECRET this demo makes one up at
# start: its links stop working when the process restarts. Set it in production.
app = Offload(secret=os.environ.get("OFFLOAD_SECRET") or secrets.token_urlsafe(32))

#: Rows the demo export writes, and the pause after each (seconds).
ROWS = int(os.environ.get("EXPORT_ROWS", "20"))
PAUSE = float(os.environ.get("EXPORT_PAUSE", "0.1"))


@app.task(name="examples.status_page.export", context=True, public_result=True, retries=1)
def export(ctx: JobContext, report: str) -> dict[str, object]:
    """Write a report row by row, telling the user how far it got."""
    ctx.message(f"exporting {report}")
    for row in range(1, ROWS + 1):
        time.sleep(PAUSE)  # stand-in for a slow query
        ctx.progress(row, total=ROWS, message=f"row {row} of {ROWS}")
    name = f"{report}-{ctx.id[:8]}.csv"
    ctx.save("file", name, public=True)  # the status endpoint shows public values only
    ctx.message("done")
    return {"file": name, "rows": ROWS}


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>{body}</body></html>"""


def page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=html.escape(title), body=body))


def home(request: Request) -> Response:
    return page(
        "Reports",
        '<form method="post" action="/export">'
        '<input name="report" value="sales" aria-label="report">'
        '<button type="submit" id="export">export</button></form>',
    )


async def start_export(request: Request) -> Response:
    # A urlencoded form, read without python-multipart (what request.form() needs).
    body = await request.body()
    fields = parse_qs(body.decode("utf-8", "replace")) if len(body) <= 4096 else {}
    report = (fields.get("report") or ["sales"])[0]
    if not report.isidentifier() or len(report) > 40:
        return page("Reports", "<p>a report name is letters, digits and underscores</p>")
    job = await export.aafter_response(report)
    token = job.status_token(expires_in=3600)
    return RedirectResponse(f"/exports/{token}", status_code=303)


def show_export(request: Request) -> Response:
    token = html.escape(request.path_params["token"], quote=True)
    return page(
        "Your export",
        f'<div id="export-status" data-offload-status="/offload/status/{token}"'
        ' data-offload-interval="250">'
        '<progress data-offload-bar max="100" value="0"></progress> '
        "<span data-offload-percent></span> <span data-offload-state></span>"
        "<p data-offload-message></p><ul data-offload-log></ul></div>"
        '<script src="/offload/static/offload-status.js" defer></script>',
    )


web = Starlette(
    routes=[
        Route("/", home),
        Route("/export", start_export, methods=["POST"]),
        Route("/exports/{token}", show_export),
        # The status endpoint and its script; no /metrics on a user-facing site.
        Mount("/offload", create_app(app, metrics=False)),
    ],
    middleware=[
        # The same Host check and headers (no inline script) for the demo's own pages.
        Middleware(SecurityMiddleware, allowed_hosts=default_hosts()),
        Middleware(AfterResponseMiddleware),
    ],
)
