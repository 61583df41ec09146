"""How many jobs a job pool hands each idle child per claim: one, unless the jobs of every
queue served have recently run in well under a millisecond (a moving average of their run
times), when a small batch saves a store round trip per job.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Batches are formed only while the recent jobs of every queue served ran shorter than
#: this (seconds, a moving average): for longer jobs one per child costs little.
BATCH_BELOW = 0.0005
#: Weight of the newest run time in that moving average.
DURATION_WEIGHT = 0.2


class BatchSizer:
    """A moving average of run times by queue, and the batch size it allows.

    >>> sizer = BatchSizer(("default",), batch_max=8, batch_wait=0.05)
    >>> sizer.note("default", 0.0001); sizer.size()
    8
    """

    def __init__(self, queues: Sequence[str], *, batch_max: int, batch_wait: float) -> None:
        self._queues = tuple(queues)
        self._most = batch_max
        self._wait = batch_wait
        #: Moving average of recent run times (seconds) by queue.
        self._durations: dict[str, float] = {}

    def note(self, queue: str, seconds: object) -> None:
        """A job of ``queue`` ran for ``seconds`` (as its child reported; else ignored)."""
        if not isinstance(seconds, int | float):
            return
        previous = self._durations.get(queue)
        if previous is None:
            self._durations[queue] = float(seconds)
        else:
            self._durations[queue] = previous + DURATION_WEIGHT * (seconds - previous)

    def size(self) -> int:
        """Jobs per idle child for the next claim: more than one only while every queue
        served has recently run its jobs in well under a millisecond, and never so many
        that the last would expect to wait more than a quarter of ``batch_wait``."""
        most = self._most
        if most <= 1:
            return 1
        recent = [self._durations.get(q) for q in self._queues]
        if not recent or any(d is None for d in recent):
            return 1
        slowest = max(d for d in recent if d is not None)
        if slowest >= BATCH_BELOW:
            return 1
        return max(1, min(most, int(self._wait / (4 * max(slowest, 1e-6)))))
