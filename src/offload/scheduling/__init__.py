"""Periodic schedules: when they fire (:mod:`.cron`, over the cronsim library), what they
are (:mod:`.periodic`, declared with ``@app.periodic``), and which fires are due
(:mod:`.plan`). The scheduler that fires them is a supervisor component,
:mod:`offload.worker.scheduler`; the store records each fire once."""

from __future__ import annotations

from offload.scheduling.cron import Cron, Every, Spec
from offload.scheduling.periodic import CATCH_UP_POLICIES, CatchUp, Periodic

__all__ = ["CATCH_UP_POLICIES", "CatchUp", "Cron", "Every", "Periodic", "Spec"]
