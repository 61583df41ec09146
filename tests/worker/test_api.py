"""The Python API (``run_worker``, ``run_drain``) on an app defined in a script's
``__main__``: children are forked, so the app needs no importable module path."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from offload import ConfigError, JobState, Offload
from offload.worker import WorkerConfig
from tests.fixtures.processes import ROOT, worker_env

SCRIPT = textwrap.dedent(
    """
    import sys
    from offload import Offload
    from offload.worker import run_drain, run_worker

    app = Offload(sys.argv[1])
    print("app loaded")  # buffered when forking: must not be repeated by each child

    @app.task
    def double(x: int) -> int:
        return 2 * x

    if __name__ == "__main__":
        if sys.argv[2] == "drain":
            jobs = double.enqueue_many([(i,) for i in range(5)])
            summary = run_drain(app, concurrency=2)
            print(summary.line())
            print(sorted(job.refresh().result() for job in jobs))
        else:
            stats = run_worker(app, concurrency=2)
            print(f"stopped after {stats.run} runs")
    """
)


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "jobs_script.py"
    path.write_text(SCRIPT)
    return path


def test_run_drain_from_a_script(tmp_path: Path, sqlite_url: str) -> None:
    done = subprocess.run(
        [sys.executable, str(_script(tmp_path)), sqlite_url, "drain"],
        cwd=ROOT, env=worker_env(sqlite_url, tmp_path / "ledger.db"), capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    loaded, first, second = done.stdout.splitlines()
    assert loaded == "app loaded"
    assert first.startswith("drain: 5 runs: 5 succeeded, 0 retried, 0 failed, 0 refused")
    assert second == "[0, 2, 4, 6, 8]"


def test_run_worker_from_a_script_until_sigterm(tmp_path: Path, sqlite_url: str) -> None:
    client = Offload(sqlite_url)
    worker = subprocess.Popen(
        [sys.executable, str(_script(tmp_path)), sqlite_url, "worker"],
        cwd=ROOT, env=worker_env(sqlite_url, tmp_path / "ledger.db"),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        job = client.enqueue_by_name("__main__.double", [21])
        assert job.wait(timeout=15).result() == 42
        assert job.state is JobState.SUCCEEDED
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=15)
        assert worker.returncode == 0
        assert out.splitlines() == ["app loaded", "stopped after 1 runs"]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
        client.close()


def test_worker_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="concurrency"):
        WorkerConfig(queues=("default",), concurrency=0)
    with pytest.raises(ConfigError, match="queue"):
        WorkerConfig(queues=("Bad Name",), concurrency=1)
    with pytest.raises(ConfigError, match="max_jobs"):
        WorkerConfig(queues=("default",), concurrency=1, max_jobs=0)
