"""Limits the worker puts on job code, and the process facts it needs to enforce them.

Timeouts are enforced by the supervisor (SIGTERM, a grace period, then SIGKILL), because a
job stuck in C code or ignoring signals cannot be trusted to stop itself. Memory has two
limits: the child's resident size, checked by the supervisor after each job (the child is
recycled), and a task's ``memory_limit``, applied in the child as an address-space limit
for the duration of one job so that a runaway allocation raises MemoryError.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import resource
import signal
import sys
from collections.abc import Iterator

import psutil

_PR_SET_PDEATHSIG = 1


def set_parent_death_signal(signum: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent dies.

    Returns False where unsupported (not Linux); callers also watch the pipe to the parent.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def address_space_limit(extra_bytes: int | None) -> Iterator[None]:
    """Let the code inside grow this process's address space by at most ``extra_bytes``.

    The limit is relative to the current size because a forked child already maps tens of
    megabytes (interpreter, app, libraries) that the job did not allocate. The previous
    soft limit is restored afterwards, so the next job of the child starts unlimited.
    """
    if not extra_bytes:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = psutil.Process().memory_info().vms + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def peak_rss_self() -> int:
    """The highest resident size this process has reached, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return int(peak if sys.platform == "darwin" else peak * 1024)


def rss_of(pid: int) -> int:
    """The resident size of a process in bytes, or 0 if it is gone."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except (psutil.Error, OSError):
        return 0


def describe_exit(exitcode: int | None) -> str:
    """``exit code 3`` or ``killed by SIGSEGV``, for error messages."""
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
