"""Sends stored while a service was down: the task that delivers them once it is back.

``send()`` on a service declared ``when_down="queue"`` that finds no instance reachable
stores the payload as a job of ``offload.service.<name>`` (a durable job like any other,
so nothing is lost if the caller's process exits). A worker that serves the service's
queue runs it: the payload goes to the service with the ``deliver`` operation, which the
service acknowledges once its ``work()`` returned (or raised: a send's error is the
service's own to log, as for a send that found it up). While no instance is reachable the
job is retried (0.5, 1, 2, then every 5 s; up to 10,000 tries, about 14 hours), so the
service receives it soon after it is back.

A delivery whose service went away after the request was written, or did not acknowledge
it within ``service_timeout``, may have run: it is sent again only to an idempotent
service; otherwise the job ends ``cancelled`` with a reason that says so, rather than
risk running it twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from offload.errors import Cancel, Retry, ServiceCallTimeout, ServiceUnavailable

if TYPE_CHECKING:
    from offload.app import Offload


def delivery_function(app: Offload, name: str) -> Callable[[Any], None]:
    """The delivery task's function for the service ``name`` of ``app``."""

    def deliver(payload: Any) -> None:
        client = app.services[name]
        idempotent = client.definition.options.idempotent
        try:
            client.deliver(payload)
        except ServiceCallTimeout as exc:
            if not idempotent:
                raise Cancel(
                    f"service {name!r} did not acknowledge the delivery in time, so it may "
                    "still run it; the service is not idempotent, so it is not sent again"
                ) from exc
            raise Retry(reason=f"service {name!r} did not acknowledge in time") from exc
        except ServiceUnavailable as exc:
            if exc.sent and not idempotent:
                raise Cancel(
                    f"service {name!r} went away after the delivery was sent, so it may "
                    "have run; the service is not idempotent, so it is not sent again"
                ) from exc
            raise Retry(reason=f"service {name!r} is unavailable: {exc}") from exc

    deliver.__qualname__ = deliver.__name__ = f"deliver_{name.replace('-', '_')}"
    return deliver
