"""Each check that guards the dashboard, over real HTTP: the CSRF token, Origin,
Sec-Fetch-Site, the Host allowlist, the credentials and the read-only role, the
refusal to serve beyond loopback without credentials, and the host application's own
login deciding roles when the dashboard is mounted inside it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from offload import Offload
from offload.errors import ConfigError
from offload.testing import run_pending, wait_for
from offload.types import JobState
from offload.web import create_app
from offload.web.csrf import COOKIE, CSRF
from tests.after_response.servers import free_port
from tests.fixtures.processes import ROOT
from tests.web import apps
from tests.web.servers import SECRET, WebServer, web_env
from tests.web.test_dashboard import token_from

ADMIN = ("ops", "admin password 1")
VIEWER = ("ops", "viewer password 2")


def confirm_token(client: httpx.Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text[-400:]
    return token_from(response.text)


def test_a_post_without_a_token_or_from_another_site_is_refused(
    web_app: Offload, server: WebServer
) -> None:
    job = apps.later.enqueue()
    path = f"/jobs/{job.id}/cancel"
    token = confirm_token(server.client, path)
    here = f"http://127.0.0.1:{server.port}"
    refused = {
        "no token": ({}, {}),
        "empty token": ({"csrf_token": ""}, {}),
        "forged token": ({"csrf_token": "0" * 64}, {}),
        "forged Origin": ({"csrf_token": token}, {"origin": "http://evil.example"}),
        "Origin of another port": ({"csrf_token": token}, {"origin": "http://127.0.0.1:1"}),
        "null Origin": ({"csrf_token": token}, {"origin": "null"}),
        "cross-site fetch": ({"csrf_token": token}, {"sec-fetch-site": "cross-site"}),
        "same-site fetch": ({"csrf_token": token}, {"sec-fetch-site": "same-site"}),
    }
    for name, (form, headers) in refused.items():
        response = server.client.post(path, data=form, headers=headers, follow_redirects=False)
        assert response.status_code == 403, name
        assert job.refresh().state is JobState.QUEUED, name
    # Another client (a cross-site page has no access to this cookie) with a stolen token.
    with httpx.Client(base_url=server.base) as other:
        stolen = other.post(path, data={"csrf_token": token}, follow_redirects=False)
        assert stolen.status_code == 403 and "CSRF token" in stolen.text
    # A text/plain or JSON body (what a cross-site form or fetch could send) is no form.
    plain = server.client.post(path, content=f"csrf_token={token}",
                               headers={"content-type": "text/plain"})  # fmt: skip
    assert plain.status_code == 415
    assert job.refresh().state is JobState.QUEUED
    # The same request as the browser sends it from the dashboard's own page passes.
    ok = server.client.post(
        path, data={"csrf_token": token},
        headers={"origin": here, "sec-fetch-site": "same-origin"}, follow_redirects=False,
    )  # fmt: skip
    assert ok.status_code == 303
    assert job.refresh().state is JobState.CANCELLED


def test_dashboard_pages_check_the_host_and_carry_the_security_headers(
    sqlite_server: WebServer,
) -> None:
    for path in ("/", "/jobs", "/processes"):
        assert sqlite_server.get(path, headers={"host": "evil.example"}).status_code == 400
        response = sqlite_server.get(path)
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["x-frame-options"] == "DENY"
    cookie = sqlite_server.get("/jobs").headers.get("set-cookie", "")
    assert cookie == "" or ("HttpOnly" in cookie and "SameSite=strict" in cookie)


@pytest.fixture
def guarded(sqlite_web_app: Offload, tmp_path: Path) -> Iterator[WebServer]:
    """``offload web`` with an admin password and a read-only one."""
    env = web_env(sqlite_web_app.settings.url, tmp_path)
    env["OFFLOAD_WEB_PASSWORD"] = ADMIN[1]
    (tmp_path / "viewer").write_text(VIEWER[1] + "\n")
    server = WebServer(
        sqlite_web_app.settings.url, tmp_path, env=env,
        args=("--read-only-password-file", str(tmp_path / "viewer")),
    )  # fmt: skip
    yield server
    server.stop()


def test_the_dashboard_asks_for_credentials(guarded: WebServer) -> None:
    for path in ("/", "/jobs", "/processes", "/metrics"):
        refused = guarded.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"] == 'Basic realm="offload"'
        assert guarded.get(path, auth=("ops", "wrong password")).status_code == 401
        assert guarded.get(path, auth=VIEWER).status_code == 200
        assert guarded.get(path, auth=ADMIN).status_code == 200


def test_a_read_only_user_sees_but_cannot_act(sqlite_web_app: Offload, guarded: WebServer) -> None:
    job = apps.fails.enqueue("ro")
    run_pending(sqlite_web_app, ["metrics"])
    with httpx.Client(base_url=guarded.base, auth=VIEWER) as viewer:
        detail = viewer.get(f"/jobs/{job.id}")
        assert detail.status_code == 200
        assert 'data-role="read-only"' in detail.text
        assert "Retry…" not in detail.text and "Delete…" not in detail.text
        assert "Retry every failed job" not in viewer.get("/jobs").text
        confirm = viewer.get(f"/jobs/{job.id}/retry")
        assert "read-only and may not act" in confirm.text
        assert 'method="post"' not in confirm.text
        # Even with a valid token for its own cookie (a token is no role).
        cookie = viewer.cookies.get(COOKIE)
        assert cookie is not None
        token = CSRF(SECRET).token(cookie)
        for action in ("retry", "delete"):
            refused = viewer.post(f"/jobs/{job.id}/{action}", data={"csrf_token": token})
            assert refused.status_code == 403
            assert "read-only" in refused.text
        bulk = viewer.post("/jobs/retry-failed", data={"csrf_token": token})
        assert bulk.status_code == 403
    assert job.refresh().state is JobState.FAILED
    with httpx.Client(base_url=guarded.base, auth=ADMIN) as admin:
        token = confirm_token(admin, f"/jobs/{job.id}/retry")
        done = admin.post(f"/jobs/{job.id}/retry", data={"csrf_token": token},
                          follow_redirects=False)  # fmt: skip
        assert done.status_code == 303
    assert job.refresh().state is JobState.QUEUED


def test_hosts_beyond_loopback_without_credentials_are_refused(sqlite_web_app: Offload) -> None:
    with pytest.raises(ConfigError, match=r"beyond loopback \(jobs.example.com\).*dashboard"):
        create_app(sqlite_web_app, allowed_hosts=["jobs.example.com"])
    with pytest.raises(ConfigError, match="dashboard"):
        create_app(sqlite_web_app, allowed_hosts=["jobs.example.com"], metrics=False)
    create_app(sqlite_web_app, allowed_hosts=["jobs.example.com"], dashboard=False, metrics=False)
    create_app(sqlite_web_app, allowed_hosts=["jobs.example.com"], read_only_password="x" * 8)
    with pytest.raises(ConfigError, match="must differ"):
        create_app(sqlite_web_app, password="x" * 8, read_only_password="x" * 8)


@pytest.fixture
def mounted(sqlite_web_app: Offload, tmp_path: Path) -> Iterator[str]:
    """``uvicorn tests.web.mounted:host``: the dashboard under /ops of a host app."""
    port = free_port()
    log = open(tmp_path / "mounted.log", "ab")
    popen = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "tests.web.mounted:host"],
        cwd=ROOT, env=web_env(sqlite_web_app.settings.url, tmp_path), stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if popen.poll() is not None:
            raise RuntimeError((tmp_path / "mounted.log").read_text(errors="replace"))
        try:
            return httpx.get(base + "/", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, timeout=30, interval=0.05, what="the host application to answer")
        yield base
    finally:
        popen.terminate()
        popen.wait(30)
        log.close()


def test_mounted_in_a_host_app_whose_login_decides_the_role(
    sqlite_web_app: Offload, mounted: str
) -> None:
    job = apps.later.enqueue()
    for user, status in (("eve", 403), ("nobody", 403), ("", 403)):
        assert httpx.get(f"{mounted}/ops/jobs", headers={"x-test-user": user}).status_code == status
    with httpx.Client(base_url=mounted, headers={"x-test-user": "bob"}) as bob:
        page = bob.get("/ops/jobs")
        assert page.status_code == 200 and 'data-role="read-only"' in page.text
        assert f'href="/ops/jobs/{job.id}"' in page.text  # links stay under the mount
        assert 'href="/ops/static/offload-dashboard.css"' in page.text
        cookie = page.headers["set-cookie"]
        assert "Path=/ops/" in cookie
    for user in ("ada", "cy"):  # "admin", or True
        with httpx.Client(base_url=mounted, headers={"x-test-user": user}) as admin:
            assert 'data-role="admin"' in admin.get("/ops/").text
            token = confirm_token(admin, f"/ops/jobs/{job.id}/cancel")
            done = admin.post(f"/ops/jobs/{job.id}/cancel", data={"csrf_token": token},
                              follow_redirects=False)  # fmt: skip
            assert done.status_code == 303
            assert done.headers["location"].startswith(f"/ops/jobs/{job.id}?done=")
    assert job.refresh().state is JobState.CANCELLED


def test_mounted_in_flask_through_a2wsgi(sqlite_web_app: Offload, tmp_path: Path) -> None:
    job = apps.fails.enqueue("flask")
    run_pending(sqlite_web_app, ["metrics"])
    port = free_port()
    env = web_env(sqlite_web_app.settings.url, tmp_path)
    env["OFFLOAD_WEB_PASSWORD"] = ADMIN[1]
    log = open(tmp_path / "flask.log", "ab")
    popen = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "tests.web.flask_mounted:flask_app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if popen.poll() is not None:
            raise RuntimeError((tmp_path / "flask.log").read_text(errors="replace"))
        try:
            return httpx.get(base + "/", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, timeout=60, interval=0.1, what="gunicorn to answer")
        assert httpx.get(f"{base}/ops/jobs").status_code == 401
        with httpx.Client(base_url=base, auth=ADMIN, timeout=30) as admin:
            page = admin.get(f"/ops/jobs/{job.id}")
            assert page.status_code == 200 and "failure detail flask" in page.text
            assert 'href="/ops/static/htmx.min.js"' not in page.text  # a script, not a link
            assert 'src="/ops/static/htmx.min.js"' in page.text
            assert admin.get("/ops/static/htmx.min.js").status_code == 200
            token = confirm_token(admin, f"/ops/jobs/{job.id}/retry")
            done = admin.post(f"/ops/jobs/{job.id}/retry", data={"csrf_token": token},
                              follow_redirects=False)  # fmt: skip
            assert done.status_code == 303
            assert done.headers["location"] == f"/ops/jobs/{job.id}?done=retried"
    finally:
        popen.terminate()
        popen.wait(30)
        log.close()
    assert job.refresh().state is JobState.QUEUED
