"""Named services: long-running processes that code reaches by name.

>>> @app.service("cache", idempotent=True)
... class Cache(Service):
...     def setup(self) -> None:
...         self.values: dict[str, object] = {}
...     def work(self, request: dict[str, object]) -> object:
...         ...
>>> app.services["cache"].call({"op": "get", "key": "feed"}, timeout=2.0)

A worker hosts every registered service (``offload worker --services cache`` picks some),
or ``offload service cache`` runs them alone. The pieces: :mod:`~offload.services.protocol`
(framing and the HMAC handshake), :mod:`~offload.services.server` (a service's process),
:mod:`~offload.services.host` (the supervisor's component), :mod:`~offload.services.client`
(``app.services``), :mod:`~offload.services.registry` (addresses from the process table),
:mod:`~offload.services.delivery` (sends stored while a service was down).

Importing this package loads only the declarations; the client, the server and the host
load when first used.
"""

from __future__ import annotations

from offload.services.definitions import Service, ServiceDefinition, ServiceOptions

__all__ = ["Service", "ServiceDefinition", "ServiceOptions"]
