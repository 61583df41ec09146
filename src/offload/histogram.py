"""Run durations as a histogram: what a worker counts and publishes in its process row,
and what ``/metrics`` reads back.

Each supervisor (and drain) counts the run time of every job its children report as
ended, in fixed buckets, and writes the counts into the ``info`` JSON of its process row
at each heartbeat, as ``info["run_seconds"]``::

    {"le": [0.005, ..., 3600.0], "counts": [...], "sum": 12.5, "count": 40}

``counts[i]`` is the runs of at most ``le[i]`` seconds and more than ``le[i - 1]`` (not
cumulative); ``count`` includes the runs longer than the last bound. Counting costs the
supervisor a bisection per run and no write of its own: the row is written anyway. A
run stopped from outside (a timeout, a crash) reports no run time and is not counted.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, TypeGuard

#: Upper bounds of the buckets, in seconds.
BOUNDS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    900.0, 3600.0,
)  # fmt: skip
#: The key of ``info`` the histogram is published under.
INFO_KEY = "run_seconds"


@dataclass
class RunHistogram:
    """Run times counted in :data:`BOUNDS`.

    >>> h = RunHistogram(); h.observe(0.2); h.observe(7.0); h.count, h.counts[5]
    (2, 1)
    """

    counts: list[int] = field(default_factory=lambda: [0] * len(BOUNDS))
    sum: float = 0.0
    count: int = 0

    def observe(self, seconds: object) -> None:
        """Count one run of ``seconds``; anything but a finite non-negative number (a
        report from a broken child) is ignored."""
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            return
        i = bisect.bisect_left(BOUNDS, seconds)
        if i < len(BOUNDS):
            self.counts[i] += 1
        self.sum += seconds
        self.count += 1

    def to_info(self) -> dict[str, Any]:
        return {
            "le": list(BOUNDS),
            "counts": list(self.counts),
            "sum": round(self.sum, 6),
            "count": self.count,
        }


@dataclass(frozen=True)
class PublishedHistogram:
    """A histogram read back from a process row: cumulative counts by upper bound."""

    buckets: list[tuple[float, int]]
    sum: float
    count: int


def from_info(info: object) -> PublishedHistogram | None:
    """The histogram a process row's decoded ``info`` publishes, checked: bounds that
    rise, non-negative integer counts that add up to at most ``count``, a finite sum.
    None when it publishes none or what is there is not that shape (a row written by
    another version or by hand)."""
    if not isinstance(info, dict):
        return None
    value = info.get(INFO_KEY)
    if not isinstance(value, dict):
        return None
    le, counts, total, count = (value.get(k) for k in ("le", "counts", "sum", "count"))
    if not isinstance(le, list) or not isinstance(counts, list) or len(le) != len(counts):
        return None
    if not le or len(le) > 100:
        return None
    if not all(_number(b) for b in le) or any(b >= c for b, c in itertools.pairwise(le)):
        return None
    if not all(_count(n) for n in counts) or not _count(count) or not _number(total):
        return None
    if sum(counts) > count or total < 0:
        return None
    cumulative = []
    running = 0
    for bound, n in zip(le, counts, strict=True):
        running += n
        cumulative.append((float(bound), running))
    return PublishedHistogram(cumulative, float(total), int(count))


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
