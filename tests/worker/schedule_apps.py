"""An app with periodic schedules for worker tests. Which schedules it declares is chosen
by ``SCHEDULE_TEST_SET`` (comma-separated names below), read when a worker imports it, so
each test's workers fire only the schedules that test looks at. Each fire's job writes a
ledger row (see :mod:`tests.fixtures.ledger`)."""

from __future__ import annotations

import os

from offload import Offload
from tests.fixtures.ledger import ledger

app = Offload()

#: The module of the tasks, as their names start.
PREFIX = "tests.worker.schedule_apps"


@app.task
def tick(region: str) -> str:
    ledger("done")
    return region


@app.task
def dst(label: str) -> str:
    ledger("done")
    return label


_chosen = {name for name in os.environ.get("SCHEDULE_TEST_SET", "").split(",") if name}

if "every-second" in _chosen:
    app.periodic(every=1, args=("eu",), name="every-second")(tick)
if "every-second-none" in _chosen:
    app.periodic(every=1, args=("none",), name="every-second-none", catch_up="none")(tick)
if "autumn" in _chosen:
    # Only on the night of the autumn change of 2026, in Berlin: 01:00 to 03:59 local.
    app.periodic(
        "*/30 1-3 25 10 *", tz="Europe/Berlin", args=("autumn",), name="autumn",
        catch_up="all", catch_up_limit=50,
    )(dst)  # fmt: skip
if "spring" in _chosen:
    # 02:30 on 29 March, a time Berlin skipped in 2026.
    app.periodic("30 2 29 3 *", tz="Europe/Berlin", args=("spring",), name="spring")(dst)
if "yearly" in _chosen:
    app.periodic("0 0 1 1 *", args=("yearly",), name="yearly")(dst)
