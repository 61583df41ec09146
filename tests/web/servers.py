"""A real ``offload web`` server in a subprocess, and the environment it runs in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from offload.testing import wait_for
from tests.after_response.servers import free_port
from tests.fixtures.processes import ROOT, worker_env

APP = "tests.web.apps:app"
SECRET = "web-tests-secret-0123456789abcdef"


def web_env(url: str, tmp: Path, **settings: Any) -> dict[str, str]:
    env = worker_env(url, tmp / "ledger.db", **settings)
    env["OFFLOAD_SECRET"] = SECRET
    return env


class WebServer:
    """``offload web --app tests.web.apps:app --bind 127.0.0.1:<free port>``."""

    def __init__(
        self,
        url: str,
        tmp: Path,
        *,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        app: str = APP,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"web-{self.port}.log"
        self._log = open(self.log_path, "ab")  # closed in stop()
        command = [sys.executable, "-m", "offload", "web", "--app", app,
                   "--bind", f"127.0.0.1:{self.port}", *args]  # fmt: skip
        self.popen = subprocess.Popen(
            command, cwd=ROOT, env=env or web_env(url, tmp), stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.client = httpx.Client(base_url=self.base, timeout=30)
        try:
            wait_for(self._ready, timeout=30, interval=0.05, what="offload web to answer")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.popen.poll() is not None:
            raise RuntimeError(f"offload web exited ({self.popen.returncode}):\n{self.log()}")
        try:
            return self.client.get("/static/offload-status.js").status_code == 200
        except httpx.TransportError:
            return False

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(30)
        self.client.close()
        self._log.close()
