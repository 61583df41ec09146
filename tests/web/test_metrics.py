"""``/metrics`` over real HTTP, parsed back with prometheus_client's own parser, for a
store whose jobs and processes are known."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from offload import Offload
from offload.store.rules import GONE_AFTER_BEATS
from offload.testing import wait_for
from tests.fixtures import processes
from tests.web import apps
from tests.web.servers import WebServer, web_env


def scrape(server: WebServer) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Each sample's value, by sample name and sorted labels."""
    response = server.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_metrics_show_the_stores_jobs_latency_and_workers(
    web_app: Offload, server: WebServer, tmp_path: Path
) -> None:
    apps.shared.enqueue_many([(n,) for n in range(3)])
    apps.fails.enqueue_many([("a",), ("b",)])
    worker = processes.start(
        "worker", web_app.settings.url, tmp_path / "ledger.db", tmp_path / "worker.log",
        app="tests.web.apps:app", args=["--queues", "metrics", "--concurrency", "1"],
    )  # fmt: skip
    try:
        wait_for(
            lambda: web_app.store.job_counts()
            == {("metrics", "succeeded"): 3, ("metrics", "failed"): 2},
            timeout=60, what="the worker to run every job",
        )  # fmt: skip
        now = time.time()
        apps.later.using(run_at=now + 3600).enqueue_many([(), ()])  # scheduled
        apps.later.using(run_at=now - 120).enqueue()  # due two minutes ago

        def settled() -> dict[str, dict[tuple[tuple[str, str], ...], float]] | None:
            m = scrape(server)
            served = m.get("offload_worker_jobs_served_total", {})
            return m if list(served.values()) == [5.0] else None

        metrics = wait_for(settled, timeout=30, what="the worker's heartbeat with its counts")
        rows = web_app.store.process_list(gone_after=GONE_AFTER_BEATS * 1.0)
    finally:
        worker.signal(15)
        worker.wait(30)

    jobs = metrics["offload_jobs"]
    assert jobs[(("queue", "metrics"), ("state", "succeeded"))] == 3
    assert jobs[(("queue", "metrics"), ("state", "failed"))] == 2
    assert jobs[(("queue", "metrics"), ("state", "queued"))] == 0
    assert jobs[(("queue", "late"), ("state", "scheduled"))] == 2
    assert jobs[(("queue", "late"), ("state", "queued"))] == 1
    assert sum(jobs.values()) == 8
    latency = metrics["offload_queue_latency_seconds"]
    assert latency[(("queue", "metrics"),)] == 0
    assert 120 <= latency[(("queue", "late"),)] < 120 + 60

    supervisor = next(p for p in rows if p.parent_id is None)
    key = (("host", supervisor.host), ("kind", "supervisor"), ("worker", supervisor.id))
    assert metrics["offload_worker_jobs_served_total"] == {key: 5.0}
    assert metrics["offload_worker_jobs_failed_total"] == {key: 2.0}
    # Run times: all five runs, each in some bucket, cumulative up to +Inf.
    assert metrics["offload_job_run_seconds_count"] == {key: 5.0}
    assert 0 < metrics["offload_job_run_seconds_sum"][key] < 60
    buckets = {
        dict(labels)["le"]: n
        for labels, n in metrics["offload_job_run_seconds_bucket"].items()
        if dict(labels)["worker"] == supervisor.id
    }
    assert buckets["+Inf"] == 5.0 and buckets["3600.0"] == 5.0
    values = [buckets[le] for le in sorted(buckets, key=lambda le: float(le))]
    assert values == sorted(values)  # cumulative
    rss = metrics["offload_process_rss_bytes"]
    kinds = sorted(dict(labels)["kind"] for labels in rss)
    assert kinds == ["child", "supervisor"]
    assert all(value > 1 << 20 for value in rss.values())  # real processes: over 1 MiB
    assert metrics["offload_processes"][(("kind", "supervisor"), ("status", "running"))] == 1
    assert metrics["offload_store_up"] == {(): 1.0}
    assert metrics["offload_scrape_seconds"][()] > 0


def test_metrics_of_an_empty_store(server: WebServer) -> None:
    metrics = scrape(server)
    assert metrics["offload_store_up"] == {(): 1.0}
    assert "offload_jobs" not in metrics  # no queue has a job yet


def test_metrics_ask_for_the_password_when_one_is_set(
    sqlite_web_app: Offload, tmp_path: Path
) -> None:
    env = web_env(sqlite_web_app.settings.url, tmp_path)
    env["OFFLOAD_WEB_PASSWORD"] = "correct horse battery"
    server = WebServer(sqlite_web_app.settings.url, tmp_path, env=env)
    try:
        refused = server.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Basic realm="offload"'
        assert server.get("/metrics", auth=("any", "wrong password")).status_code == 401
        assert server.get("/metrics", auth=("any", "correct horse battery")).status_code == 200
        # The status endpoint and its script stay public: the token is the credential.
        assert server.get("/static/offload-status.js").status_code == 200
    finally:
        server.stop()
