"""Host-local lock files that say who serves which queue of a store on this machine.

Every worker and drain holds a shared ``flock`` on ``serve.<queue>.lock`` for each queue it
serves, and a worker pool one on ``pool.<queues>.lock`` for its queue set, from start until
it begins to stop. Whoever wants to know whether a queue is served tries an exclusive,
non-blocking lock on the same file: it fails while anyone holds the shared one. The kernel
lets go of a lock when its process dies, however it dies, so there is nothing stale to
clean up and no process table to scan.

Starting one: ``spawn.<queue>.lock`` (autostart) and ``ensure.<queues>.lock`` (``offload
ensure``) are taken exclusively by the starter, and the descriptor is handed to the process
it starts, which closes it only once it holds its serving locks: starters racing from many
processes start at most one, with no gap between the two locks.

The folder: next to a SQLite file (``jobs.db.offload/``), or for PostgreSQL a per-user
folder in the temporary directory named by a hash of the URL without its password and of
the schema (the same store seen from the same host and user). Each serving process also
leaves ``pids/<pid>`` there while it runs (its kind and queues), for ``offload ensure`` to
report and for operators and tests to find it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from offload.errors import ConfigError
from offload.settings import Settings

__all__ = [
    "LockDirError",
    "hold_shared",
    "is_held",
    "lock_dir",
    "pid_files",
    "pool_lock",
    "serve_lock",
    "try_exclusive",
]

#: Seconds a ``ping:`` sender trusts a listener's answer before it wakes it again for the
#: same queue (the local check, one ``flock`` call, is made at every enqueue).
QUIET = 1.0
#: Longer queue-set names are hashed, so a file name stays far below 255 bytes.
_MAX_NAME = 120


class LockDirError(ConfigError):
    """The lock folder cannot be used (not ours, not a folder, not writable)."""


def lock_dir(settings: Settings, *, create: bool = True) -> str:
    """The folder of this store's lock files on this host (made if ``create``)."""
    if settings.scheme == "sqlite":
        from offload.store.sqlite.connection import database_path

        folder = os.path.abspath(database_path(settings.url)) + ".offload"
        if create:
            _make(folder, private=False)
        return folder
    digest = hashlib.sha256(f"{_without_password(settings.url)}\n{settings.schema}".encode())
    parent = os.path.join(tempfile.gettempdir(), f"offload-{os.getuid()}")
    folder = os.path.join(parent, "pg-" + digest.hexdigest()[:20])
    if create:
        _make(parent, private=True)
        _make(folder, private=True)
    return folder


def _without_password(url: str) -> str:
    """The URL with any password left out (of the netloc and of the query)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = user.split(":", 1)[0] + "@" + host
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _make(folder: str, *, private: bool) -> None:
    try:
        os.mkdir(folder, 0o700 if private else 0o777)
    except FileExistsError:
        pass
    except OSError as exc:
        raise LockDirError(f"cannot create the lock folder {folder}: {exc.strerror}") from None
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise LockDirError(f"the lock folder {folder} exists and is not a folder")
    if private and (info.st_uid != os.getuid() or info.st_mode & 0o022):
        raise LockDirError(
            f"the lock folder {folder} must belong to this user and be writable by no one "
            f"else (it has uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o})"
        )


def _set_name(queues: Iterable[str]) -> str:
    name = ",".join(sorted(set(queues)))
    if len(name) > _MAX_NAME:
        name = "h-" + hashlib.sha256(name.encode()).hexdigest()[:24]
    return name


def serve_lock(folder: str, queue: str) -> str:
    """Held shared by every worker and drain serving ``queue``."""
    return os.path.join(folder, f"serve.{queue}.lock")


def spawn_lock(folder: str, queue: str) -> str:
    """Held by the one starter of a drain for ``queue``, then by that drain until it serves."""
    return os.path.join(folder, f"spawn.{queue}.lock")


def pool_lock(folder: str, queues: Sequence[str]) -> str:
    """Held shared by every worker pool of this queue set."""
    return os.path.join(folder, f"pool.{_set_name(queues)}.lock")


def ensure_lock(folder: str, queues: Sequence[str]) -> str:
    """Held by the one ``offload ensure`` starting a pool, then by that pool until it serves."""
    return os.path.join(folder, f"ensure.{_set_name(queues)}.lock")


def open_lock(path: str) -> int:
    """A descriptor on the lock file at ``path`` (made if missing), closed on exec."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)


def is_held(fd: int) -> bool:
    """True while any other descriptor holds a lock on this file: an exclusive,
    non-blocking attempt fails (and when it succeeds, it is let go at once)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def try_exclusive(path: str) -> int | None:
    """A descriptor holding an exclusive lock on ``path``, or None if someone holds it."""
    fd = open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


def hold_shared(paths: Iterable[str]) -> list[int]:
    """Descriptors holding a shared lock on each of ``paths`` (waiting only for a probe's
    exclusive attempt, which lasts microseconds)."""
    fds: list[int] = []
    try:
        for path in paths:
            fd = open_lock(path)
            fds.append(fd)
            fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        release(fds)
        raise
    return fds


def release(fds: Iterable[int]) -> None:
    """Close the descriptors (which lets go of their locks)."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def probe(path: str) -> bool:
    """Whether anyone holds a lock on the file at ``path`` (no file: nobody)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        return is_held(fd)
    finally:
        os.close(fd)


# -- pid files --------------------------------------------------------------------------------
def write_pid_file(folder: str, kind: str, queues: Sequence[str]) -> str:
    """Leave ``pids/<pid>`` (``kind queues``) in ``folder``; returns its path."""
    pids = os.path.join(folder, "pids")
    with contextlib.suppress(FileExistsError):
        os.mkdir(pids, 0o777)
    path = os.path.join(pids, str(os.getpid()))
    with open(path, "w", encoding="utf-8") as out:
        out.write(f"{kind} {','.join(queues)}\n")
    return path


def pid_files(folder: str) -> dict[int, tuple[str, tuple[str, ...]]]:
    """The serving processes that left a pid file: pid -> (kind, queues). A process killed
    with SIGKILL leaves its file behind: check the pid before trusting it."""
    pids = os.path.join(folder, "pids")
    found: dict[int, tuple[str, tuple[str, ...]]] = {}
    try:
        names = os.listdir(pids)
    except FileNotFoundError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(pids, name), encoding="utf-8") as f:
                kind, _, queues = f.read(1024).strip().partition(" ")
        except OSError:
            continue
        found[int(name)] = (kind, tuple(q for q in queues.split(",") if q))
    return found
