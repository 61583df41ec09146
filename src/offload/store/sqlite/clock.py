"""The SQLite store's clocks: the wall clock its times are stored in, and the host's boot id
and monotonic clock, by which leases and heartbeats are judged so that a step of the wall
clock neither expires a healthy lease nor delays the rescue of a dead one.

A SQLite store lives on one host, so every process that uses it shares that host's
``CLOCK_MONOTONIC`` (``time.monotonic()`` on Linux: system-wide, never stepped) and its boot
id (``/proc/sys/kernel/random/boot_id``, new at every boot). A monotonic reading compares
with another only under the same boot id; where the boot id cannot be read (not Linux),
the store falls back to the wall clock for everything.

``OFFLOAD_TEST_CLOCK_OFFSET`` (test-only) adds that many seconds to this process's wall
clock, to test clock steps with real processes. It is read once, at the first use, and
changes nothing else: the same code runs with or without it.
"""

from __future__ import annotations

import functools
import math
import os
import time

from offload.errors import ConfigError

#: The test-only variable that shifts this process's wall clock (see the module docstring).
TEST_OFFSET_VARIABLE = "OFFLOAD_TEST_CLOCK_OFFSET"

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


@functools.cache
def _offset() -> float:
    raw = os.environ.get(TEST_OFFSET_VARIABLE, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"{TEST_OFFSET_VARIABLE}: expected seconds as a float, got {raw!r}"
        ) from None
    if not math.isfinite(value) or abs(value) > 10 * 365 * 86400:
        raise ConfigError(
            f"{TEST_OFFSET_VARIABLE}: expected a finite offset of at most ten years, got {raw!r}"
        )
    return value


def wall() -> float:
    """The wall clock, seconds since the epoch: what the store's times are stored in."""
    return time.time() + _offset()


def mono() -> float:
    """The host's monotonic clock (comparable between processes of one boot)."""
    return time.monotonic()


@functools.cache
def boot_id() -> str | None:
    """This boot's id, or None where the system does not publish one."""
    try:
        with open(BOOT_ID_PATH, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, ValueError):
        return None
    return text if 0 < len(text) <= 64 else None
