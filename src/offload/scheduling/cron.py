"""When a schedule fires: a cron expression in a time zone (parsed and stepped by the
cronsim library), or a fixed interval in seconds.

Fire times are whole seconds since the epoch (an ``int``): the identity of a fire, the
same on every machine that steps the same schedule, compared exactly by the store.

* :class:`Cron` steps with cronsim in its zone, so daylight-saving changes follow cronsim's
  rules (those of Debian's cron): a time that falls in the hour skipped in spring fires
  at the first valid moment after it, once; a time in the hour repeated in autumn fires
  once, in its first occurrence, unless the expression names every hour (``*/30 * * *
  *`` fires in both occurrences, which are different moments).
* :class:`Every` fires at the multiples of its interval since the epoch (every 30 s: at
  :00 and :30 of each minute), so every machine agrees on the fire times whatever moment
  it started at, and no zone applies.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from offload.errors import ConfigError

#: Longest interval accepted, in seconds (about 100 years).
MAX_EVERY = 100 * 366 * 86400


class Spec(Protocol):
    """When a schedule fires (fire times are whole epoch seconds)."""

    def next_after(self, t: int) -> int | None:
        """The first fire time after ``t`` (strictly), or None if it never fires again."""
        ...

    def latest(self, after: int, upto: int, n: int) -> list[int]:
        """Up to ``n`` of the latest fire times in ``(after, upto]``, in ascending order."""
        ...

    def expression(self) -> str:
        """The schedule as written: ``*/5 * * * *`` or ``every 30s``."""
        ...

    def describe(self) -> str:
        """A human reading: ``Every fifth minute (Europe/Berlin)``, ``every 30 seconds``."""
        ...


@dataclass(frozen=True)
class Cron:
    """A cron expression (five fields, or six with seconds first) in time zone ``tz``."""

    expr: str
    tz: str = "UTC"
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.expr, str) or not self.expr.strip():
            raise ConfigError(f"expected a cron expression as a non-empty str, got {self.expr!r}")
        if not isinstance(self.tz, str) or not self.tz:
            raise ConfigError(f"cron {self.expr!r}: expected tz to be a zone name, got {self.tz!r}")
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ConfigError(
                f"cron {self.expr!r}: unknown time zone {self.tz!r} (expected an IANA name "
                "such as 'Europe/Berlin' or 'UTC')"
            ) from None
        object.__setattr__(self, "zone", zone)
        try:
            it = CronSim(self.expr, dt.datetime.now(zone))
        except CronSimError as exc:
            raise ConfigError(f"bad cron expression {self.expr!r}: {exc}") from None
        except Exception as exc:  # cronsim may fail on input it did not foresee
            raise ConfigError(f"bad cron expression {self.expr!r}: {exc!r}") from None
        try:
            next(it)
        except StopIteration:
            raise ConfigError(f"cron expression {self.expr!r} never fires") from None

    def next_after(self, t: int) -> int | None:
        it = CronSim(self.expr, dt.datetime.fromtimestamp(t, self.zone))
        try:
            return int(next(it).timestamp())
        except StopIteration:  # cronsim looks ahead fifty years at most
            return None

    def latest(self, after: int, upto: int, n: int) -> list[int]:
        if n < 1 or upto <= after:
            return []
        # Reverse iteration yields fire times strictly before its start: one second on.
        it = CronSim(self.expr, dt.datetime.fromtimestamp(upto + 1, self.zone), reverse=True)
        out: list[int] = []
        for moment in it:
            t = int(moment.timestamp())
            if t <= after:
                break
            out.append(t)
            if len(out) == n:
                break
        out.reverse()
        return out

    def expression(self) -> str:
        return self.expr

    def describe(self) -> str:
        try:
            text = CronSim(self.expr, dt.datetime.now(self.zone)).explain()
        except Exception:  # an explanation is a courtesy: the expression itself is valid
            text = self.expr
        return f"{text} ({self.tz})"


@dataclass(frozen=True)
class Every:
    """Every ``seconds`` seconds, at the multiples of it since the epoch."""

    seconds: int

    def __post_init__(self) -> None:
        s = self.seconds
        if type(s) is not int or not 1 <= s <= MAX_EVERY:
            raise ConfigError(
                f"expected every to be whole seconds from 1 to {MAX_EVERY} (or a timedelta "
                f"of whole seconds), got {s!r}"
            )

    def next_after(self, t: int) -> int | None:
        return (t // self.seconds + 1) * self.seconds

    def latest(self, after: int, upto: int, n: int) -> list[int]:
        if n < 1 or upto <= after:
            return []
        s = self.seconds
        last = upto // s * s
        first = max(after // s + 1, last // s - n + 1) * s
        return list(range(first, last + 1, s))

    def expression(self) -> str:
        return f"every {self.seconds}s"

    def describe(self) -> str:
        s = self.seconds
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if s % size == 0:
                n = s // size
                return f"every {unit}" if n == 1 else f"every {n} {unit}s"
        return "every second" if s == 1 else f"every {s} seconds"


def every_seconds(value: object) -> int:
    """``every=`` as whole seconds: an int, an integral float, or a timedelta."""
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not int:
        raise ConfigError(
            f"expected every to be whole seconds (at least 1) or a timedelta, got {value!r}"
        )
    return value
