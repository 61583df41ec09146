"""An app with periodic schedules and services, for the schedules and services pages
(``offload web|worker --app tests.web.pages_apps:app``). Its worker fires
``web-every-second`` and hosts ``web-echo``; ``web-weekly`` is not due for days and
``web-idle`` is hosted by no worker, so it shows as down."""

from __future__ import annotations

from typing import Any

from offload import Offload
from offload.services import Service

app = Offload()


@app.periodic(every=1, name="web-every-second")
@app.task(name="web.pages.tick", queue="ticks", retries=0)
def tick() -> str:
    return "tick"


@app.periodic("0 3 * * 1", tz="Europe/Berlin", name="web-weekly", catch_up="none")
@app.task(name="web.pages.weekly", queue="ticks", retries=0)
def weekly(region: str = "eu") -> str:
    return region


@app.service("web-echo")
class Echo(Service):
    """Replies with what it was sent; fails when asked to."""

    def work(self, request: Any) -> Any:
        if isinstance(request, dict) and request.get("fail"):
            raise ValueError(f"asked to fail: {request['fail']}")
        return request


@app.service("web-idle")
class Idle(Service):
    """Hosted by no worker of the tests."""

    def work(self, request: Any) -> None:
        return None
