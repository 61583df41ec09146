"""What ``task.after_response`` adds to a response: the same Starlette endpoint with and
without the call, served by uvicorn, measured in one run, requests interleaved.

    .venv/bin/python -m bench.after_response                    # SQLite, 400 requests each
    .venv/bin/python -m bench.after_response --requests 1000 --url postgresql://...

The task takes 2 s: ``io`` sleeps (a slow API call, the usual after-response work), ``cpu``
spins (shares the GIL with the request threads: such work belongs in a worker). The
figure to read is the p99 difference of ``io``: the target is under 5 ms. Prints a table
and the command that reproduced it. The server runs with ``after_response_threads=2``
(the default), so most jobs overflow to the queue: that path is measured too.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from offload import Offload

ROOT = Path(__file__).resolve().parent.parent
TASK_SECONDS = 2.0
TARGET_MS = 5.0

# -- the served app (imported by the uvicorn process) ---------------------------------------
app = Offload()


@app.task(name="bench.after_response.slow")
def slow(kind: str) -> None:
    if kind == "cpu":
        end = time.monotonic() + TASK_SECONDS
        while time.monotonic() < end:
            sum(range(1000))
    else:
        time.sleep(TASK_SECONDS)


def _asgi_app() -> object:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from offload.integrations.asgi import AfterResponseMiddleware

    def plain(request: Request) -> Response:
        return JSONResponse({"ok": True})

    def with_task(request: Request) -> Response:
        job = slow.after_response(request.query_params["kind"])
        return JSONResponse({"ok": True, "id": job.id})

    routes = [Route("/plain", plain), Route("/with-task", with_task)]
    return Starlette(routes=routes, middleware=[Middleware(AfterResponseMiddleware)])


def __getattr__(name: str) -> object:
    # ``uvicorn bench.after_response:asgi_app`` builds the app on demand, so running the
    # benchmark itself imports no Starlette.
    if name == "asgi_app":
        return _asgi_app()
    raise AttributeError(name)


# -- the measurement ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env.update(
        OFFLOAD_URL=url, OFFLOAD_AFTER_RESPONSE_GRACE="0", PYTHONPATH=str(ROOT),
        OFFLOAD_AFTER_RESPONSE_THREADS="2",
    )  # fmt: skip
    command = [
        sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--log-level", "warning", "bench.after_response:asgi_app",
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(base: str, kind: str, requests: int) -> tuple[list[float], list[float]]:
    """Latencies (seconds) of the plain and the with-task endpoint, interleaved."""
    import httpx

    plain: list[float] = []
    with_task: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(50):  # warm up both paths (connections, imports, the pool)
            client.get("/plain")
            client.get("/with-task", params={"kind": kind})
        for n in range(2 * requests):
            path = "/with-task" if n % 2 else "/plain"
            started = time.perf_counter()
            response = client.get(path, params={"kind": kind} if n % 2 else None)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"{path}: HTTP {response.status_code}: {response.text}")
            (with_task if n % 2 else plain).append(elapsed)
    return plain, with_task


def wait_ready(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(base + "/plain", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the server did not answer within 30 s")


def run(url: str | None, requests: int, kinds: list[str]) -> bool:
    with tempfile.TemporaryDirectory(prefix="offload-bench-ar-") as tmp:
        store_url = url or f"sqlite:///{Path(tmp) / 'jobs.db'}"
        store = Offload(store_url)
        store.migrate()
        print(f"after_response: {requests} requests per endpoint, a {TASK_SECONDS:g} s task, "
              f"store {store_url.split('://')[0]}, uvicorn + Starlette, "
              f"after_response_threads=2")  # fmt: skip
        header = f"{'task':<5} {'endpoint':<10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        print(header + f" {'max ms':>8}")
        ok = True
        plain_p50: dict[str, float] = {}
        for kind in kinds:
            log = Path(tmp) / f"server-{kind}.log"
            port = free_port()
            server = start_server(store_url, port, log)
            try:
                wait_ready(f"http://127.0.0.1:{port}", server, log)
                plain, with_task = measure(f"http://127.0.0.1:{port}", kind, requests)
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(30)
            for name, values in (("plain", plain), ("with-task", with_task)):
                figures = [percentile(values, q) * 1000 for q in (0.5, 0.95, 0.99)]
                print(f"{kind:<5} {name:<10} " + " ".join(f"{f:8.2f}" for f in figures)
                      + f" {max(values) * 1000:8.2f}")  # fmt: skip
            p99_plain, p99_task = percentile(plain, 0.99), percentile(with_task, 0.99)
            added = (p99_task - p99_plain) * 1000
            median_added = (statistics.median(with_task) - statistics.median(plain)) * 1000
            verdict = ""
            if kind == "io":
                ok = added < TARGET_MS
                verdict = f"  [target < {TARGET_MS:g} ms: {'met' if ok else 'NOT met'}]"
            print(f"{kind:<5} added: p99 {added:+.2f} ms (x{p99_task / p99_plain:.2f}), "
                  f"median {median_added:+.2f} ms{verdict}")  # fmt: skip
            plain_p50[kind] = statistics.median(plain)
        if "io" in plain_p50 and "cpu" in plain_p50:
            print(f"cpu   note: spinning tasks slow every endpoint of the process (plain p50 "
                  f"x{plain_p50['cpu'] / plain_p50['io']:.0f} of the io run): they share the "
                  "GIL with the requests; run CPU-bound work in a worker")  # fmt: skip
        counts: dict[str, int] = {}
        for (_, state), n in store.store.job_counts().items():
            counts[state] = counts.get(state, 0) + n
        print("jobs after the run: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
              + " (queued ones overflowed the pool: a worker would run them)")  # fmt: skip
        store.close()
    args = [sys.executable, "-m", "bench.after_response", "--requests", str(requests)]
    if url:
        args += ["--url", url]
    if kinds != ["io", "cpu"]:
        args += ["--kinds", ",".join(kinds)]
    print("reproduce: " + shlex.join(args))
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="per endpoint and task kind")
    parser.add_argument("--url", help="store URL (default: a fresh SQLite file)")
    parser.add_argument("--kinds", default="io,cpu", help="task kinds: io, cpu")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    sys.exit(0 if run(args.url, args.requests, kinds) else 1)


if __name__ == "__main__":
    main()
