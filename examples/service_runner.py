"""What the service examples share: run ``offload worker`` for an example app in the
background on a fresh SQLite file, wait until its services are registered, stop it.

Not an example itself; in production the worker runs under systemd or a container.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from offload.store.rules import GONE_AFTER_BEATS
from offload.views import service_of

ROOT = Path(__file__).resolve().parent.parent


def prepare() -> str:
    """Point this process (and the worker it starts) at a fresh store; return its URL.
    Build the example's client app after this: an app reads OFFLOAD_* when it is built."""
    folder = tempfile.mkdtemp(prefix="offload-svc-")
    url = f"sqlite:///{folder}/jobs.db"
    os.environ["OFFLOAD_URL"] = url
    if "OFFLOAD_SERVICE_SOCKET_DIR" not in os.environ:
        # A short folder: a Unix socket's path must fit in 107 bytes.
        sockets = tempfile.mkdtemp(prefix="ofs-", dir="/tmp")
        os.environ["OFFLOAD_SERVICE_SOCKET_DIR"] = sockets
        atexit.register(shutil.rmtree, sockets, True)
    atexit.register(shutil.rmtree, folder, True)
    os.environ.setdefault("OFFLOAD_HEARTBEAT", "1")
    return url


@contextlib.contextmanager
def running_worker(app_spec: str, services: Sequence[str], *args: str) -> Iterator[None]:
    """``offload worker --app APP_SPEC`` until the block ends (then SIGTERM, and wait)."""
    from offload import Offload

    Offload().migrate()
    log = open(os.environ["OFFLOAD_URL"].removeprefix("sqlite:///") + ".log", "ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "offload", "worker", "--app", app_spec, "-c", "2", *args],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_registered(services, worker)
        yield
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        log.close()


def _wait_registered(services: Sequence[str], worker: subprocess.Popen[bytes]) -> None:
    from offload import Offload

    app = Offload()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with code {worker.returncode}")
            rows = app.store.process_list(gone_after=GONE_AFTER_BEATS * app.settings.heartbeat)
            names = {(service_of(p) or ("",))[0] for p in rows if p.status == "running"}
            if set(services) <= names:
                return
            time.sleep(0.05)
        raise SystemExit(f"services {list(services)} did not register within 60 s")
    finally:
        app.close()
