"""Start a detached drain on this host when no worker or drain serves a queue.

:class:`Spawner` answers "is ``queue`` served here?" with one ``flock`` call on a
descriptor it keeps open (see :mod:`offload.autostart.locks`; about two microseconds, so
nothing is cached), and otherwise, holding the queue's spawn lock, starts::

    python -m offload drain --app module:attr --queues QUEUE --idle-exit SECONDS

in a new session (it survives the starting process and its terminal), with stdin from
``/dev/null``, no inherited descriptor but the spawn lock, and its output appended to the
autostart log. It never waits for the drain: a reaper thread notes its exit, and a drain
that failed (it exited non-zero) makes the next start of that queue in this process wait,
longer after each failure, so a broken app does not start a process per enqueue.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from offload import logs
from offload.autostart import locks
from offload.settings import Settings

__all__ = ["Spawner", "default_log_path", "start_detached"]

#: Longest wait, in seconds, before a queue whose drain keeps failing is tried again.
MAX_BACKOFF = 60.0


def default_log_path(settings: Settings) -> str:
    """``autostart_log``, else ``<db>.autostart.log`` next to a SQLite file, else
    ``autostart.log`` in the PostgreSQL store's lock folder."""
    if settings.autostart_log:
        return settings.autostart_log
    folder = locks.lock_dir(settings)
    if settings.scheme == "sqlite":
        return folder[: -len(".offload")] + ".autostart.log"
    return os.path.join(folder, "autostart.log")


def child_env(settings: Settings, app_spec: str) -> dict[str, str]:
    """The environment of a started process: this one's, on the same store URL, with the
    app's import root on ``PYTHONPATH`` when the app module is loaded here."""
    env = dict(os.environ)
    env["OFFLOAD_URL"] = settings.url
    env["OFFLOAD_APP"] = app_spec
    root = _import_root(app_spec.partition(":")[0])
    if root:
        parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if root not in parts:
            env["PYTHONPATH"] = os.pathsep.join([root, *parts])
    return env


def _import_root(module_name: str) -> str | None:
    """The folder on ``sys.path`` that ``module_name`` was imported from, if it is loaded."""
    module = sys.modules.get(module_name)
    filename = getattr(module, "__file__", None)
    if not filename:
        return None
    path = Path(filename).resolve().parent
    depth = module_name.count(".") + (1 if Path(filename).name == "__init__.py" else 0)
    for _ in range(depth):
        path = path.parent
    return str(path)


def start_detached(
    argv: Sequence[str], *, env: dict[str, str], log_path: str, keep_fd: int
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, stdin ``/dev/null``, stdout and stderr appended to
    ``log_path``, no descriptor inherited but ``keep_fd``. Returns at once."""
    folder = os.path.dirname(os.path.abspath(log_path))
    os.makedirs(folder, exist_ok=True)
    out = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=out, close_fds=True,
            pass_fds=(keep_fd,), start_new_session=True, env=env,
        )  # fmt: skip
    finally:
        os.close(out)


class Spawner:
    """Starts at most one drain per queue on this host for one store (thread-safe).

    ``app_spec`` is the ``module:attribute`` the drain imports.
    """

    def __init__(self, settings: Settings, app_spec: str) -> None:
        self.settings = settings
        self.app_spec = app_spec
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._folder: str | None = None
        self._fds: dict[str, int] = {}  # serve-lock descriptors, kept open
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    def served(self, queue: str) -> bool:
        """Whether a worker or drain on this host serves ``queue``: one ``flock`` call on a
        descriptor kept open (no lock taken; nothing cached, so a worker that begins to
        stop counts as gone at once)."""
        fd = self._fds.get(queue)
        if fd is None or self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():  # a forked child: descriptors of its own
                    self._reset()
                fd = self._fds.get(queue)
                if fd is None:
                    path = locks.serve_lock(self._folder_now(), queue)
                    fd = self._fds[queue] = locks.open_lock(path)
        return locks.is_held(fd)

    def ensure(self, queues: Iterable[str]) -> dict[str, str]:
        """Make sure each queue is served here: ``alive`` (a worker or drain serves it),
        ``starting`` (another process is starting one), ``started`` (this call did),
        ``waiting`` (its drain failed lately; tried again later)."""
        result: dict[str, str] = {}
        for queue in sorted(set(queues)):
            if self.served(queue):
                result[queue] = "alive"
                continue
            with self._lock:
                result[queue] = self._start_unless_served(queue)
        return result

    def _folder_now(self) -> str:
        if self._folder is None:
            self._folder = locks.lock_dir(self.settings)
        return self._folder

    def _start_unless_served(self, queue: str) -> str:
        spawn_fd = locks.try_exclusive(locks.spawn_lock(self._folder_now(), queue))
        if spawn_fd is None:  # another process is starting one, and holds it until ready
            return "starting"
        try:
            if self.served(queue):  # one became ready since the first look
                return "alive"
            if time.monotonic() < self._retry_at.get(queue, 0.0):
                return "waiting"
            self._start(queue, spawn_fd)
        finally:
            os.close(spawn_fd)  # the drain holds its own copy until it serves
        return "started"

    def _start(self, queue: str, spawn_fd: int) -> None:
        settings = self.settings
        log_path = default_log_path(settings)
        argv = [
            sys.executable, "-m", "offload", "drain", "--app", self.app_spec, "--queues", queue,
            "--idle-exit", f"{settings.autostart_idle:g}", "--started-by-fd", str(spawn_fd),
        ]  # fmt: skip
        proc = start_detached(
            argv, env=child_env(settings, self.app_spec), log_path=log_path, keep_fd=spawn_fd
        )
        logs.log(
            "autostart.started", pid=proc.pid, queue=queue, app=self.app_spec, log=log_path,
            by=os.getpid(),
        )  # fmt: skip
        threading.Thread(
            target=self._reap, args=(proc, queue, log_path), name="offload-autostart-reaper",
            daemon=True,
        ).start()  # fmt: skip

    def _reap(self, proc: subprocess.Popen[bytes], queue: str, log_path: str) -> None:
        code = proc.wait()  # no zombie left in a long-lived web process
        with self._lock:
            if code == 0:
                self._failures.pop(queue, None)
                return
            failures = self._failures[queue] = self._failures.get(queue, 0) + 1
            delay = min(MAX_BACKOFF, 2.0**failures)
            self._retry_at[queue] = time.monotonic() + delay
        logs.log(
            "autostart.failed", "error", pid=proc.pid, queue=queue, exit_code=code,
            retry_in=delay, reason=f"the drain it started exited with code {code}; see {log_path}",
        )  # fmt: skip
