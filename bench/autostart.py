"""What ``autostart="spawn"`` costs and what it buys, measured in one run:

* the cost it adds to an enqueue while a worker serves the queue: the same enqueue with
  autostart off and on, interleaved, p50 and p99 (target: p99 added under 1 ms), and the
  check alone (one ``flock`` call);
* the time from the first enqueue on an idle machine (no worker, no drain) to the job
  running in the drain that enqueue started (target: under 1 s), over a few trials.

    .venv/bin/python -m bench.autostart                     # SQLite, 2000 enqueues each
    .venv/bin/python -m bench.autostart --enqueues 5000 --trials 10 --url postgresql://...

Prints a table and the command that reproduced it; exits 1 if a target was missed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from offload import Offload

ROOT = Path(__file__).resolve().parent.parent
APP = "bench.autostart:app"
ENQUEUE_TARGET_MS = 1.0
START_TARGET_S = 1.0


# -- the app the worker and the started drains import ----------------------------------------
def _noop(n: int) -> int:
    return n


def _started() -> float:
    """When the job began to run (the wall clock: compared with the enqueuer's)."""
    return time.time()


def register(target: Offload) -> Offload:
    target.task(name="bench.autostart.noop")(_noop)
    target.task(name="bench.autostart.started")(_started)
    return target


app = register(Offload())


# -- the measurement ----------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env.update(OFFLOAD_URL=url, PYTHONPATH=str(ROOT), OFFLOAD_POLL_INTERVAL="0.5")
    return env


def enqueuing_app(url: str, log: Path, **settings: object) -> Offload:
    return register(Offload(url, autostart_app=APP, autostart_log=str(log), **settings))


def bench_enqueue(url: str, n: int, tmp: Path) -> tuple[bool, list[str]]:
    """Enqueue latency with autostart off and spawn, a worker serving the queue."""
    from offload.autostart import after_enqueue, locks
    from offload.autostart.spawn import Spawner

    log = tmp / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "offload", "worker", "--app", APP, "--concurrency", "1"],
        cwd=ROOT, env=env_for(url), stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    off = enqueuing_app(url, tmp / "autostart.log")
    on = enqueuing_app(url, tmp / "autostart.log", autostart="spawn")
    try:
        folder = locks.lock_dir(off.settings)
        deadline = time.monotonic() + 60
        while not locks.probe(locks.serve_lock(folder, "default")):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log.read_text()}")
            time.sleep(0.05)
        # Due in an hour: the worker serves the queue but runs nothing meanwhile, so its
        # commits do not stand in the enqueues' way.
        tasks = {
            "off": off.get_task("bench.autostart.noop").using(delay=3600),
            "spawn": on.get_task("bench.autostart.noop").using(delay=3600),
        }
        for k in range(50):  # warm up: connections, the lock descriptor
            tasks["off"].enqueue(k)
            tasks["spawn"].enqueue(k)
        times: dict[str, list[float]] = {"off": [], "spawn": []}
        for k in range(2 * n):
            mode = "spawn" if k % 2 else "off"
            began = time.perf_counter()
            tasks[mode].enqueue(k)
            times[mode].append(time.perf_counter() - began)
        # What autostart adds to each enqueue, alone: the hook the enqueue calls.
        new_jobs = [tasks["spawn"]._new_job([0], {})]
        hook = []
        for _ in range(max(n, 1000)):
            began = time.perf_counter()
            after_enqueue(on, new_jobs)
            hook.append(time.perf_counter() - began)
        spawner = Spawner(on.settings, APP)
        checks = []
        for _ in range(max(n, 1000)):
            began = time.perf_counter()
            served = spawner.served("default")
            checks.append(time.perf_counter() - began)
            assert served
        spawned = (tmp / "autostart.log").exists()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        off.close()
        on.close()
    lines = [f"{'enqueue, a worker alive':<28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"]
    for mode in ("off", "spawn"):
        values = times[mode]
        figures = [percentile(values, q) * 1000 for q in (0.5, 0.99)] + [max(values) * 1000]
        lines.append(f"{'autostart=' + mode:<28} " + " ".join(f"{f:8.3f}" for f in figures))
    diff = [
        (percentile(times["spawn"], q) - percentile(times["off"], q)) * 1000 for q in (0.5, 0.99)
    ]
    cost = [percentile(hook, q) * 1000 for q in (0.5, 0.99)]
    check = [percentile(checks, q) * 1e6 for q in (0.5, 0.99)]
    met = cost[1] < ENQUEUE_TARGET_MS
    ok = met and not spawned
    lines += [
        f"{'difference (spawn - off)':<28} {diff[0]:+8.3f} {diff[1]:+8.3f}   (store noise)",
        f"{'added by autostart (hook)':<28} {cost[0]:8.3f} {cost[1]:8.3f}   "
        f"[target p99 < {ENQUEUE_TARGET_MS:g} ms: {'met' if met else 'NOT met'}]",
        f"the check alone (one flock call): p50 {check[0]:.1f} us, p99 {check[1]:.1f} us",
        "drains started meanwhile: " + ("some (a bug: a worker was alive)" if spawned else "none"),
    ]
    return ok, lines


def bench_first_job(url: str, trials: int, tmp: Path) -> tuple[bool, list[str]]:
    """From the first enqueue on an idle machine to the job running in the drain it started."""
    from offload.autostart import locks

    log = tmp / "autostart.log"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    web = enqueuing_app(url, log, autostart="spawn", autostart_idle=0.2, poll_interval=0.5)
    task = web.get_task("bench.autostart.started")
    folder = locks.lock_dir(web.settings)
    web.store.job_counts()  # the web process is up: its store is open
    delays: list[float] = []
    try:
        for _ in range(trials):
            deadline = time.monotonic() + 60
            while _drains_left(folder):  # idle: the previous trial's drain has exited
                if time.monotonic() > deadline:
                    raise RuntimeError("the previous drain did not exit")
                time.sleep(0.05)
            began = time.time()
            job = task.enqueue()
            ran_at = float(web.get_job(job.id).wait(timeout=60).result())
            delays.append(ran_at - began)
    finally:
        web.close()
    ok = max(delays) < START_TARGET_S
    each = ", ".join(f"{d * 1000:.0f}" for d in delays)
    lines = [
        f"first enqueue on an idle machine -> job running ({trials} trials): "
        f"median {percentile(delays, 0.5) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms  "
        f"[target < {START_TARGET_S:g} s: {'met' if ok else 'NOT met'}]  (each, ms: {each})"
    ]
    return ok, lines


def _drains_left(folder: str) -> bool:
    """Whether a serving process of the store still runs (by its pid file)."""
    from offload.autostart import locks

    for pid in locks.pid_files(folder):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return True
    return False


def run(url: str | None, enqueues: int, trials: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="offload-bench-autostart-") as tmp:
        folder = Path(tmp)
        first_url = url or f"sqlite:///{folder / 'first.db'}"
        enqueue_url = url or f"sqlite:///{folder / 'enqueue.db'}"
        for each in {first_url, enqueue_url}:
            store = Offload(each)
            store.migrate()
            store.close()
        print(f"autostart: store {enqueue_url.split('://')[0]}, {enqueues} enqueues per mode, "
              f"{trials} cold starts, {os.cpu_count()} CPUs")  # fmt: skip
        ok_enqueue, lines = bench_enqueue(enqueue_url, enqueues, folder)
        print("\n".join(lines))
        ok_first, lines = bench_first_job(first_url, trials, folder)
        print("\n".join(lines))
    args = [sys.executable, "-m", "bench.autostart", "--enqueues", str(enqueues)]
    args += ["--trials", str(trials)]
    if url:
        args += ["--url", url]
    print("reproduce: " + shlex.join(args))
    return ok_enqueue and ok_first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--enqueues", type=int, default=2000, help="per mode")
    parser.add_argument("--trials", type=int, default=5, help="cold starts measured")
    parser.add_argument("--url", help="store URL (default: fresh SQLite files)")
    args = parser.parse_args()
    sys.exit(0 if run(args.url, args.enqueues, args.trials) else 1)


if __name__ == "__main__":
    main()
