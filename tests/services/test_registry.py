"""Addresses come from the process table, and only well-formed, running rows of this
name (a Unix socket only from this host) are used: rows written by hand prove it."""

from __future__ import annotations

import json

from offload import Offload
from offload.services import registry
from offload.types import ProcessInfo


def row(pid: int, info: object, *, host: str = "here", kind: str = "service") -> ProcessInfo:
    text = info if isinstance(info, str) else json.dumps(info)
    return ProcessInfo(id=f"w/{pid}", kind=kind, host=host, pid=pid, info=text)


def test_resolve_keeps_only_running_well_formed_rows_of_the_name(store_url: str) -> None:
    app = Offload(store_url, hostname="here", heartbeat=1.0, lease=5.0)
    try:
        app.migrate()
        app.store.process_heartbeat(
            [
                row(1, {"service": "cache", "address": "unix:/run/cache-1.sock"}),
                row(2, {"service": "cache", "address": "tcp:10.0.0.2:7000"}, host="there"),
                row(3, {"service": "cache", "address": "unix:/run/other-host.sock"}, host="b"),
                row(4, {"service": "mailer", "address": "unix:/run/mailer.sock"}),
                row(5, {"service": "cache", "address": "tcp:10.0.0.5:0"}),
                row(6, {"service": "cache", "address": "file:/etc/passwd"}),
                row(7, "not json"),
                row(8, ["a", "list"]),
                row(9, {"service": "cache", "address": "unix:/run/child.sock"}, kind="child"),
                row(10, {"service": "cache", "address": "unix:/run/stopped.sock"}),
            ]
        )  # fmt: skip
        app.store.process_stop(["w/10"])
        found = [str(a) for a in registry.resolve(app, "cache")]
        assert found == ["unix:/run/cache-1.sock", "tcp:10.0.0.2:7000"]
        assert [str(a) for a in registry.resolve(app, "mailer")] == ["unix:/run/mailer.sock"]
        assert registry.resolve(app, "nothing") == []
    finally:
        app.close()
