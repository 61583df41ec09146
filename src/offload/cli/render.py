"""Rendering helpers shared by the CLI commands: a console, human sizes and durations.

Text that comes from the store (task names, messages, tracebacks) is never read as rich
markup: the console is built with markup off and cells are passed as :class:`Text`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console
from rich.text import Text

from offload.types import JobState

F = TypeVar("F", bound=Callable[..., Any])

#: Width used when stdout is not a terminal (pipes, files, tests), so ids never wrap.
PIPE_WIDTH = 200

STATE_STYLES = {
    JobState.WAITING: "dim",
    JobState.SCHEDULED: "cyan",
    JobState.QUEUED: "blue",
    JobState.RUNNING: "yellow",
    JobState.SUCCEEDED: "green",
    JobState.FAILED: "red",
    JobState.CANCELLED: "magenta",
    JobState.QUARANTINED: "bold red",
}

PROCESS_STYLES = {"running": "green", "gone": "bold red", "stopped": "dim"}


def make_console() -> Console:
    """A console on stdout. Markup and highlighting are off: store text is shown as is."""
    width = None
    if not sys.stdout.isatty():
        width = int(os.environ.get("COLUMNS", "0") or 0) or PIPE_WIDTH
    return Console(markup=False, highlight=False, emoji=False, width=width)


#: Control characters (C0 but tab and newline, DEL, C1): shown escaped, never sent raw,
#: so text from the store cannot move the cursor, retitle the terminal or hide lines.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_controls(text: str, *, multiline: bool = False) -> str:
    """``text`` with control characters escaped (``\x1b`` for ESC); with ``multiline``
    tabs and newlines are kept, else they are escaped too."""
    if not multiline:
        text = text.replace("\t", "\\t").replace("\n", "\\n")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def cell(value: object, style: str = "") -> Text:
    """A table cell holding ``value`` as plain one-line text (empty for None)."""
    return Text("" if value is None else escape_controls(str(value)), style=style)


def block(text: str, style: str = "") -> Text:
    """Several lines of store text (a traceback, pretty JSON), control characters escaped."""
    return Text(escape_controls(text, multiline=True), style=style)


def state_text(state: JobState) -> Text:
    return Text(state.value, style=STATE_STYLES.get(state, ""))


def human_size(n: int | None) -> str:
    """Bytes as ``512 B``, ``3.4 MiB``; empty for 0 or None (not measured)."""
    if not n:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def human_duration(seconds: float | None) -> str:
    """Seconds as ``42s``, ``3m05s``, ``2h07m``, ``4d03h``."""
    if seconds is None:
        return ""
    if not math.isfinite(seconds):
        return "?"  # a hand-written row's time
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def timestamp(ts: float | None) -> str:
    """Epoch seconds as ``2026-11-23 19:20:01`` (UTC); empty for None; a value no date
    can show (a row written by hand) as the number it is."""
    if ts is None:
        return ""
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return f"{ts!r} (not a valid time)"


def percent(current: float, total: float | None) -> str:
    """``42%`` of a known total, else the bare current value (or nothing at 0)."""
    if not (math.isfinite(current) and (total is None or math.isfinite(total))):
        return "?"
    if total:
        return f"{max(0.0, min(100.0, 100.0 * current / total)):.0f}%"
    return _number(current) if current else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def pretty_json(value: Any) -> str:
    return json.dumps(finite(value), indent=2, ensure_ascii=False, sort_keys=False)


def json_line(value: Any) -> str:
    """One compact JSON line for ``--json`` output (always valid JSON: a non-finite
    number read from a hand-written row becomes null)."""
    return json.dumps(finite(value), ensure_ascii=False, separators=(",", ":"))


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None, which JSON can carry."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
