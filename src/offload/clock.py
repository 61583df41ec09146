"""The one place that reads the system clock.

Wall time (``now``) is what the store records and compares with ``run_at`` and leases;
monotonic time (``monotonic``) measures durations inside one process, so a clock step
(NTP, a suspended laptop) never makes a timeout fire early or late.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


system_clock = SystemClock()
