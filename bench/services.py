"""Service round trips: request/reply p50 and p99 on a Unix socket and on TCP loopback,
and fire-and-forget sends per second, against a real service process.

    .venv/bin/python -m bench.services                    # 5,000 calls, 20,000 sends each
    .venv/bin/python -m bench.services --calls 200 --sends 1000

Each transport runs ``offload service bench-echo`` (a reply of what it was sent) on a
fresh SQLite store, with the shared secret set, so every frame is authenticated as in
production. One client thread measures each call from ``call()`` to its reply (the
connection is kept, as in a web process); sends are counted until a final call has its
reply, so every send was received. Prints a table and the command that reproduces it;
exits 1 when the Unix socket p50 misses its target (0.3 ms).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from offload import Offload
from offload.services import Service
from offload.store.rules import GONE_AFTER_BEATS
from offload.views import service_of

ROOT = Path(__file__).resolve().parent.parent
TARGET_P50_MS = 0.3
SECRET = "bench-secret-0123456789"

app = Offload()


@app.service("bench-echo")
class Echo(Service):
    def work(self, request: Any) -> Any:
        return request


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start(folder: Path, transport: str) -> tuple[subprocess.Popen[bytes], Offload]:
    url = f"sqlite:///{folder / transport}.db"
    sockets = str(folder / f"s-{transport}")  # a short path: /tmp/ofs-bench-.../s-unix
    settings = {"secret": SECRET, "service_socket_dir": sockets, "heartbeat": 1.0}
    if transport == "tcp":
        settings["service_bind"] = "127.0.0.1"
    client = Offload(url, **settings)
    client.service("bench-echo")(Echo)
    client.migrate()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env.update({f"OFFLOAD_{k.upper()}": str(v) for k, v in settings.items()})
    env.update(OFFLOAD_URL=url, PYTHONPATH=str(ROOT))
    log = open(folder / f"{transport}.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "offload", "service", "bench-echo", "--app", "bench.services:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = client.store.process_list(gone_after=GONE_AFTER_BEATS)
        if any(p.status == "running" and service_of(p) for p in rows):
            return process, client
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"the service did not start; see {folder / transport}.log")


def measure(client: Offload, calls: int, sends: int) -> dict[str, float]:
    echo = client.services["bench-echo"]
    payload = {"key": "feed", "value": list(range(10))}
    for _ in range(200):  # warm up: connection, caches
        echo.call(payload)
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        echo.call(payload)
        times.append(time.perf_counter() - began)
    began = time.perf_counter()
    for _ in range(sends):
        echo.send(payload)
    echo.call(payload)  # answered after every send before it
    rate = sends / (time.perf_counter() - began)
    return {
        "p50_ms": percentile(times, 0.5) * 1000,
        "p99_ms": percentile(times, 0.99) * 1000,
        "mean_ms": statistics.fmean(times) * 1000,
        "sends_per_s": rate,
    }


def run(calls: int, sends: int, transports: list[str]) -> bool:
    results = {}
    with tempfile.TemporaryDirectory(prefix="ofs-bench-", dir="/tmp") as tmp:
        for transport in transports:
            process, client = start(Path(tmp), transport)
            try:
                results[transport] = measure(client, calls, sends)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
                client.services.close()
                client.close()
    print(f"services: {calls} calls and {sends} sends per transport, {os.cpu_count()} CPUs, "
          f"authenticated frames")  # fmt: skip
    print(f"{'transport':<10} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'sends/s':>10}")
    for transport, r in results.items():
        print(f"{transport:<10} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['mean_ms']:>8.3f} "
              f"{r['sends_per_s']:>10,.0f}")  # fmt: skip
    ok = True
    if "unix" in results:
        ok = results["unix"]["p50_ms"] < TARGET_P50_MS
        print(f"target: unix p50 < {TARGET_P50_MS} ms: {'met' if ok else 'NOT met'}")
    args = [sys.executable, "-m", "bench.services", "--calls", str(calls), "--sends", str(sends)]
    if transports != ["unix", "tcp"]:
        args += ["--transports", ",".join(transports)]
    print("reproduce: " + shlex.join(args))
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--sends", type=int, default=20000)
    parser.add_argument("--transports", default="unix,tcp", help="unix, tcp or both")
    args = parser.parse_args()
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    if not transports or set(transports) - {"unix", "tcp"}:
        parser.error(f"--transports: expected unix and/or tcp, got {args.transports!r}")
    sys.exit(0 if run(args.calls, args.sends, transports) else 1)


if __name__ == "__main__":
    main()
