"""Charts drawn on the server as SVG: no chart library, no script, nothing the
Content-Security-Policy would block. This module computes the shapes; the templates
(``templates/charts.html``) write them out, escaped like everything else.

Queue depth over time: the store keeps no history of its queues, so each web process
remembers the waiting-job counts it read for the overview (at most one sample every
:data:`SAMPLE_EVERY` seconds, :data:`SAMPLES` of them). Reading them costs nothing more:
the overview reads those counts anyway. The chart starts when the process starts
serving the overview, and says so.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: Outcomes in the jobs-per-minute chart, bottom to top.
OUTCOMES = ("succeeded", "failed", "cancelled", "quarantined")
WIDTH = 720
HEIGHT = 200
_LEFT = 44
_BOTTOM = 20
_TOP = 8
#: Seconds between two queue-depth samples, and how many are kept (an hour).
SAMPLE_EVERY = 10.0
SAMPLES = 360
#: Most queues drawn as lines (the deepest ones); the rest are summed as "other".
MAX_LINES = 8


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str
    title: str


@dataclass(frozen=True)
class Line:
    points: str
    series: int
    label: str


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    text: str


@dataclass
class Chart:
    """An SVG chart's shapes and labels, in a ``WIDTH`` x ``HEIGHT`` view box."""

    title: str
    bars: list[Bar] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    empty: str = ""
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = _LEFT
    plot_bottom: int = HEIGHT - _BOTTOM


def _nice_max(value: float) -> float:
    """The smallest of 1, 2 or 5 times a power of ten at or above ``value`` (the top of
    the y axis)."""
    scale = 1.0
    while True:
        for step in (1.0, 2.0, 5.0):
            if step * scale >= value:
                return step * scale
        scale *= 10.0


def _y_ticks(top: float, plot_h: float) -> list[Tick]:
    bottom = HEIGHT - _BOTTOM
    return [Tick(_LEFT - 4, bottom - plot_h * f, f"{top * f:g}") for f in (0.0, 0.5, 1.0)]


def per_minute(counts: Mapping[tuple[float, str], int], now: float, minutes: int) -> Chart:
    """Stacked bars: jobs finished in each of the last ``minutes`` minutes, by outcome."""
    chart = Chart(title=f"Jobs finished per minute, last {minutes} minutes")
    chart.legend = [(kind, kind) for kind in OUTCOMES]
    first = (now // 60) * 60 - (minutes - 1) * 60
    totals = [0] * minutes
    cells: dict[tuple[int, str], int] = {}
    for (minute, state), n in counts.items():
        i = int((minute - first) // 60)
        if 0 <= i < minutes and n > 0:
            cells[i, state] = cells.get((i, state), 0) + n
            totals[i] += n
    if not any(totals):
        chart.empty = "no job finished in this window"
    top = _nice_max(max(totals, default=0) or 1)
    plot_w = WIDTH - _LEFT - 4
    plot_h = HEIGHT - _BOTTOM - _TOP
    slot = plot_w / minutes
    for i in range(minutes):
        y = float(HEIGHT - _BOTTOM)
        for kind in OUTCOMES:
            n = cells.get((i, kind), 0)
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            at = time.strftime("%H:%M", time.gmtime(first + 60 * i))
            chart.bars.append(
                Bar(_LEFT + i * slot + 0.5, y, max(slot - 1, 0.5), h, kind, f"{at} UTC: {n} {kind}")
            )
    chart.ticks = _y_ticks(top, plot_h)
    chart.ticks += [
        Tick(_LEFT, HEIGHT - 4, f"-{minutes} min"),
        Tick(WIDTH - 30, HEIGHT - 4, "now"),
    ]
    return chart


class DepthSampler:
    """The waiting jobs of each queue over time, as this process saw them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, dict[str, int]]] = deque(maxlen=SAMPLES)

    def offer(self, now: float, counts: Mapping[tuple[str, str], int]) -> None:
        """Keep the waiting (queued, due) jobs of ``counts`` if the last sample is
        :data:`SAMPLE_EVERY` seconds old."""
        depth: dict[str, int] = {}
        for (queue, state), n in counts.items():
            if state == "queued":
                depth[queue] = depth.get(queue, 0) + n
            else:
                depth.setdefault(queue, 0)
        with self._lock:
            if self._samples:
                last = self._samples[-1][0]
                if now < last - SAMPLE_EVERY:
                    self._samples.clear()  # the store's clock went back: start again
                elif now - last < SAMPLE_EVERY:
                    return
            self._samples.append((now, depth))

    def samples(self) -> list[tuple[float, dict[str, int]]]:
        with self._lock:
            return list(self._samples)


def depth_over_time(samples: Sequence[tuple[float, Mapping[str, int]]], now: float) -> Chart:
    """Lines: waiting jobs of each queue at each sample."""
    window = SAMPLE_EVERY * SAMPLES
    chart = Chart(title="Queue depth (waiting jobs) over the last hour, sampled here")
    if len(samples) < 2:
        chart.empty = "collecting samples: this chart fills while the overview is open"
    peak: dict[str, int] = {}
    for _, depth in samples:
        for queue, n in depth.items():
            peak[queue] = max(peak.get(queue, 0), n)
    shown = sorted(peak, key=lambda q: (-peak[q], q))[:MAX_LINES]
    rest = [q for q in peak if q not in shown]
    series: list[tuple[str, list[tuple[float, int]]]] = []
    for queue in shown:
        series.append((queue, [(t, d.get(queue, 0)) for t, d in samples]))
    if rest:
        series.append(("other", [(t, sum(d.get(q, 0) for q in rest)) for t, d in samples]))
    top = _nice_max(max((n for _, pts in series for _, n in pts), default=0) or 1)
    plot_w = WIDTH - _LEFT - 4
    plot_h = HEIGHT - _BOTTOM - _TOP
    start = now - window
    for i, (label, pts) in enumerate(series):
        coords = [
            (_LEFT + plot_w * max(0.0, (t - start) / window), HEIGHT - _BOTTOM - plot_h * n / top)
            for t, n in pts
        ]
        chart.lines.append(
            Line(" ".join(f"{x:.1f},{y:.1f}" for x, y in coords), i % MAX_LINES, label)
        )
        chart.legend.append((f"series-{i % MAX_LINES}", label))
    chart.ticks = _y_ticks(top, plot_h)
    chart.ticks += [Tick(_LEFT, HEIGHT - 4, "-60 min"), Tick(WIDTH - 30, HEIGHT - 4, "now")]
    return chart
