"""Services the tests run in real worker processes (``--app tests.services.apps:app``).

Services that record what they did append one line per request to the file named by
``OFFLOAD_TEST_LEDGER`` (plus ``.services``), so a test can tell what ran, and how often,
after the process that ran it died.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from offload import Offload
from offload.services import Service

app = Offload()


def register_all(target: Offload) -> Offload:
    """Register every service of this module on ``target`` too (a test's client app, on
    the test's own store and settings) and return it."""
    for name, definition in app._services.items():
        target.service(name, **_options(definition.options))(definition.cls)
    return target


def _options(options: Any) -> dict[str, Any]:
    fields = ("tick", "idempotent", "when_down", "instances", "recycle_after", "memory_limit")
    return {name: getattr(options, name) for name in (*fields, "queue")}


def record(line: str) -> None:
    """Append one line to the services ledger (O_APPEND: whole lines, any process)."""
    path = os.environ.get("OFFLOAD_TEST_LEDGER")
    if not path:
        return
    fd = os.open(path + ".services", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@app.service("echo", idempotent=True)
class Echo(Service):
    """Replies with what it was sent; counts its loop() calls; fails on request."""

    def setup(self) -> None:
        self.loops = 0

    def loop(self) -> None:
        self.loops += 1

    def work(self, request: Any) -> Any:
        if isinstance(request, dict) and request.get("fail"):
            raise ValueError(f"asked to fail: {request['fail']}")
        if isinstance(request, dict) and request.get("loops"):
            return self.loops
        if isinstance(request, dict) and request.get("pid"):
            return os.getpid()
        return request


@app.service("slow")
class Slow(Service):
    """Not idempotent: records each request when it starts, then sleeps or dies."""

    def work(self, request: dict[str, Any]) -> Any:
        record(f"slow start {request['tag']} {os.getpid()}")
        if request.get("die"):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(float(request.get("sleep", 0)))
        record(f"slow end {request['tag']} {os.getpid()}")
        return request["tag"]


@app.service("steady", idempotent=True)
class Steady(Slow):
    """Like ``slow``, but idempotent: a call cut short is tried again."""

    def work(self, request: dict[str, Any]) -> Any:
        if request.get("die") and not os.environ.get("OFFLOAD_TEST_DIED"):
            # Dies once per process lineage at most: the restarted one answers.
            marker = os.environ.get("OFFLOAD_TEST_LEDGER", "") + ".died"
            if not os.path.exists(marker):
                open(marker, "w").close()
                record(f"steady died {request['tag']} {os.getpid()}")
                os.kill(os.getpid(), signal.SIGKILL)
        record(f"steady ran {request['tag']} {os.getpid()}")
        return request["tag"]


@app.service("mailer", when_down="queue")
class Mailer(Service):
    """Fire-and-forget: records every mail it is handed."""

    def work(self, request: dict[str, Any]) -> None:
        record(f"mail {request['to']} {os.getpid()}")


@app.service("recycled", idempotent=True, recycle_after=5)
class Recycled(Service):
    def work(self, request: Any) -> int:
        return os.getpid()


@app.service("pair", instances=2, idempotent=True)
class Pair(Service):
    def work(self, request: Any) -> int:
        return os.getpid()


@app.service("bloated", memory_limit=1, idempotent=True)
class Bloated(Service):
    """Always over its memory limit: recycled at every heartbeat."""

    def work(self, request: Any) -> int:
        return os.getpid()
