"""Where a service's instances listen: read from the process table, checked at the
boundary.

Each running instance has a process row of kind ``service`` whose ``info`` JSON carries
its ``service`` name and ``address`` (written by :mod:`offload.services.host`). A row is
used only if its status is ``running``, its name and address are well formed, and (for a
Unix socket) it was written on this host; anything else is skipped, so a row edited by
hand or written by another version cannot send a client somewhere unexpected.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from offload.services.protocol import Address, parse_address
from offload.store.rules import GONE_AFTER_BEATS
from offload.worker.config import host_name

if TYPE_CHECKING:
    from offload.app import Offload
    from offload.types import ProcessInfo


def resolve(app: Offload, name: str) -> list[Address]:
    """The addresses of the running instances of ``name`` this process can reach, in row
    order (raises what the store raises)."""
    rows = app.store.process_list(gone_after=GONE_AFTER_BEATS * app.settings.heartbeat)
    here = host_name(app)
    found: list[Address] = []
    for row in rows:
        address = address_of(row, name)
        if address is None or (address.kind == "unix" and row.host != here):
            continue
        if address not in found:
            found.append(address)
    return found


def address_of(row: ProcessInfo, name: str) -> Address | None:
    """The address of ``row`` if it is a running instance of ``name``, else None."""
    if row.kind != "service" or row.status != "running" or not isinstance(row.info, str):
        return None
    try:
        info = json.loads(row.info)
    except ValueError:
        return None
    if not isinstance(info, dict) or info.get("service") != name:
        return None
    try:
        return parse_address(info.get("address"))
    except ValueError:
        return None
