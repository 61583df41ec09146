"""The benchmarks keep working: a tiny run of every measurement on both stores.

Nothing here asserts a speed (that depends on the machine); it checks that the one
command runs end to end and reports every figure, with its limit and target.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "raw_batched_insert",
    "raw_commit",
    "enqueue_single",
    "enqueue_bulk",
    "processing_c1",
    "processing_c2",
    "processing_c4",
    "io_c8",
    "io_c32",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "rss_supervisor_start",
    "rss_supervisor_end",
    "rss_supervisor_growth",
    "rss_child_start",
    "rss_child_end",
}
#: Reported as a fraction of a limit measured in the same run.
WITH_FRACTION = {
    "enqueue_single",
    "enqueue_bulk",
    "processing_c1",
    "processing_c2",
    "processing_c4",
    "io_c8",
    "io_c32",
}


@pytest.mark.timeout(120)
def test_quick_benchmark_reports_every_measurement(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--stores", "sqlite,postgres",
         "--postgres-url", postgres_server.url("postgres"), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["command"].startswith("python -m bench.run --quick")
    assert {"cpus", "python", "sqlite", "postgres"} <= set(report["machine"])
    for store in ("sqlite", "postgres"):
        results = {r["key"]: r for r in report["results"] if r["store"] == store}
        assert set(results) == EXPECTED, store
        for key, r in results.items():
            assert isinstance(r["value"], float | int) and math.isfinite(r["value"]), (store, key)
            if key in WITH_FRACTION:
                assert r["fraction"] is not None and r["fraction"] > 0, (store, key)
                assert r["limit"], (store, key)
        for key in ("processing_c1", "processing_c2", "processing_c4", "io_c8", "io_c32"):
            detail = results[key]["detail"]
            assert detail["verified_succeeded"] == detail["jobs"], (store, key)
        assert results["processing_c2"]["target"], store
        assert results["latency_p50"]["value"] <= results["latency_p99"]["value"], store
    assert "of limit" in proc.stdout
