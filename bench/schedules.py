"""What the scheduler costs an idle supervisor: the CPU time of a real ``offload worker``
supervisor process (its children not counted) over a quiet stretch, with no schedule and
with 1,000 registered schedules (990 daily cron expressions spread over the day in
several zones, and 10 fixed intervals of a minute, so a few fire meanwhile).

    .venv/bin/python -m bench.schedules                        # SQLite, 30 s each
    .venv/bin/python -m bench.schedules --store postgres       # a throwaway server
    .venv/bin/python -m bench.schedules --seconds 60 --postgres-url postgresql://...

The overhead is the difference of the two CPU shares (target: under 1 % of one CPU).
Prints a table and the command that reproduced it; exits 1 if the target was missed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from offload import Offload

ROOT = Path(__file__).resolve().parent.parent
APP = "bench.schedules:app"
TARGET_PERCENT = 1.0
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")


# -- the app the supervisor imports: BENCH_SCHEDULES schedules ------------------------------------
def _report(n: int) -> int:
    return n


def register(target: Offload, count: int) -> Offload:
    task = target.task(name="bench.schedules.report")(_report)
    for n in range(count):
        name = f"bench-{n:04d}"
        if n % 100 == 99:  # one in a hundred: every minute
            target.periodic(every=60, args=(n,), name=name)(task)
        else:
            minute, hour = n % 60, (n * 7) % 24
            zone = ZONES[n % len(ZONES)]
            target.periodic(f"{minute} {hour} * * *", tz=zone, args=(n,), name=name)(task)
    return target


app = register(Offload(), int(os.environ.get("BENCH_SCHEDULES", "0")))


# -- the measurement ----------------------------------------------------------------------------
def measure(url: str, count: int, seconds: float, tmp: Path) -> dict[str, float]:
    """Start a supervisor with ``count`` schedules, let it settle, and measure its CPU."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env.update(OFFLOAD_URL=url, PYTHONPATH=str(ROOT), BENCH_SCHEDULES=str(count))
    log = tmp / f"worker-{count}.log"
    schema = Offload(url)
    schema.migrate()
    schema.close()
    began = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "offload", "worker", "--app", APP, "--concurrency", "1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        ready = "event=scheduler.started" if count else "event=worker.started"
        deadline = time.monotonic() + 120
        while ready not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        started = time.monotonic() - began
        time.sleep(3.0)  # settle: the first heartbeats, the child's start
        supervisor = psutil.Process(proc.pid)
        before, t0 = supervisor.cpu_times(), time.monotonic()
        time.sleep(seconds)
        after, t1 = supervisor.cpu_times(), time.monotonic()
        rss = supervisor.memory_info().rss
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    cpu = (after.user - before.user) + (after.system - before.system)
    fired = log.read_text(errors="replace").count("event=schedule.fired")
    return {
        "percent": 100.0 * cpu / (t1 - t0),
        "cpu_s": cpu,
        "wall_s": t1 - t0,
        "start_s": started,
        "rss_mib": rss / 2**20,
        "fired": float(fired),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds (each)")
    parser.add_argument("--schedules", type=int, default=1000, help="schedules registered")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url", help="a server to create databases on (default: start one)"
    )
    args = parser.parse_args(argv)
    store = "postgres" if args.postgres_url else args.store
    with tempfile.TemporaryDirectory(prefix="offload-bench-") as folder:
        tmp = Path(folder)
        with contextlib.ExitStack() as stack:
            if store == "postgres":
                from bench.run import postgres_urls

                fresh = stack.enter_context(postgres_urls(args.postgres_url))
                urls = [fresh(), fresh()]
            else:
                urls = [f"sqlite:///{tmp / 'base.db'}", f"sqlite:///{tmp / 'loaded.db'}"]
            base = measure(urls[0], 0, args.seconds, tmp)
            loaded = measure(urls[1], args.schedules, args.seconds, tmp)
    overhead = loaded["percent"] - base["percent"]
    print(f"scheduler overhead at idle, store={store}, {args.seconds:g} s measured each")
    print(f"{'schedules':>10} {'cpu %':>8} {'cpu s':>8} {'start s':>8} {'rss MiB':>8} {'fired':>6}")
    for count, r in ((0, base), (args.schedules, loaded)):
        print(
            f"{count:>10} {r['percent']:>8.3f} {r['cpu_s']:>8.3f} {r['start_s']:>8.2f}"
            f" {r['rss_mib']:>8.1f} {r['fired']:>6.0f}"
        )
    ok = overhead < TARGET_PERCENT
    verdict = "ok" if ok else "MISSED"
    print(f"overhead: {overhead:.3f} % of one CPU (target < {TARGET_PERCENT:g} %): {verdict}")
    shown = ["python", "-m", "bench.schedules", *(argv if argv is not None else sys.argv[1:])]
    print("reproduce: " + shlex.join(shown))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
