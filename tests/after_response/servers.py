"""Real web servers for the after-response tests: uvicorn, gunicorn and werkzeug in
subprocesses, configured by ``OFFLOAD_*`` variables, with their output in a log file."""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from offload.testing import wait_for
from tests.fixtures.processes import ROOT, worker_env

HERE = "tests.after_response"

#: How each stack is started: the command after ``python``, with ``{port}`` to fill in.
COMMANDS: dict[str, list[str]] = {
    "starlette-uvicorn": [
        "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--no-access-log",
        f"{HERE}.web_asgi:asgi_app",
    ],
    "flask-werkzeug": ["-m", f"{HERE}.serve_werkzeug", f"{HERE}.web_flask:flask_app", "{port}"],
    "flask-gunicorn": [
        "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", "1", "--threads", "8",
        "--graceful-timeout", "20", f"{HERE}.web_flask:flask_app",
    ],
    "django-gunicorn": [
        "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", "1", "--threads", "8",
        "--graceful-timeout", "20", f"{HERE}.web_django:wsgi_application",
    ],
    "django-uvicorn": [
        "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--no-access-log",
        f"{HERE}.web_django:asgi_application",
    ],
    "django-uvicorn-wrapped": [
        "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--no-access-log",
        f"{HERE}.web_django:asgi_wrapped",
    ],
}  # fmt: skip
STACKS = list(COMMANDS)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One web server process; ``get()`` sends real HTTP requests to it."""

    def __init__(
        self,
        stack: str,
        url: str,
        ledger: Path,
        log_path: Path,
        *,
        wrap: Sequence[str] = (),
        **settings: Any,
    ) -> None:
        self.stack = stack
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, *(a.format(port=self.port) for a in COMMANDS[stack])]
        if wrap:  # e.g. a shell that mounts a tmpfs first: "... && exec <command>"
            command = [*wrap[:-1], wrap[-1] + " " + shlex.join(command)]
        self._log = open(log_path, "ab")  # closed in stop()/kill()
        self.popen = subprocess.Popen(
            command, cwd=ROOT, env=worker_env(url, ledger, **settings),
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.client = httpx.Client(base_url=self.base, timeout=30)
        try:
            wait_for(self._ready, timeout=30, interval=0.05, what=f"{stack} to answer")
        except BaseException:
            self.kill()
            raise

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _ready(self) -> bool:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.stack} exited ({self.popen.returncode}):\n{self.log()}")
        try:
            return self.client.get("/plain").status_code == 200
        except httpx.TransportError:
            return False

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def after(self, task: str, *args: Any, count: int = 1, path: str = "/after") -> Any:
        """Call the ``/after`` view: ``count`` after-response jobs of ``task(*args)``."""
        import json

        response = self.get(path, task=task, args=json.dumps(list(args)), count=count)
        assert response.status_code == 200, response.text
        return response.json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``signum`` and wait for the exit; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
        try:
            return self.popen.wait(timeout)
        finally:
            self.client.close()
            self._log.close()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(30)
        self.client.close()
        self._log.close()
