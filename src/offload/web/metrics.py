"""``/metrics``: the store, read at scrape time, in the Prometheus exposition format.

Nothing is counted in this process: every scrape asks the store, so any number of web
processes report the same figures, and a restart loses nothing. What is exported:

``offload_jobs{queue, state}`` (gauge)
    Jobs in the store by queue and state (scheduled apart from queued). The finished
    states are gauges too: they count the jobs kept, which fall when old ones are
    pruned, so they are no counters.
``offload_queue_latency_seconds{queue}`` (gauge)
    Seconds since the ``run_at`` of the queue's oldest due job: how far behind its
    workers are (0 when nothing due waits).
``offload_worker_jobs_served_total``, ``offload_worker_jobs_failed_total``
``{worker, kind, host}`` (counters)
    Jobs run, and jobs that raised, by each running worker or drain since it started,
    from the process table. These only grow while the process lives and a new process
    starts a new series, which is what Prometheus counters are: ``rate()`` and
    ``increase()`` work on them across restarts.
``offload_job_run_seconds{worker, kind, host}`` (histogram)
    Run times of the jobs each running worker or drain ran since it started, from the
    histogram it publishes in its process row (see :mod:`offload.histogram`). A new
    process starts a new series, as for the counters above.
``offload_process_rss_bytes{process, kind, host, pid, parent}`` (gauge)
    Resident memory of each live process (supervisors, children, drains) at its last
    heartbeat.
``offload_processes{kind, status}`` (gauge)
    Rows of the process table by kind and status (running, gone, stopped).
``offload_store_up`` and ``offload_scrape_seconds`` (gauges)
    Whether the store answered, and how long reading it took.

The run-duration histogram is counted by the workers themselves, not read from the
jobs: reading every finished job's times at each scrape would not scale.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from offload import histogram
from offload.errors import OffloadError
from offload.store.rules import GONE_AFTER_BEATS
from offload.types import JobState
from offload.views import decode

if TYPE_CHECKING:
    from offload.app import Offload

#: Every state, so a queue's series are all there (0 when no job is in one).
STATES = tuple(s.value for s in JobState)


class StoreCollector(Collector):
    """A Prometheus collector that reads the app's store at each scrape."""

    def __init__(self, app: Offload) -> None:
        self.app = app

    def describe(self) -> Iterable[Metric]:
        return []  # nothing is read when the collector is registered

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily("offload_store_up", "1 when the store answered this scrape.")
        try:
            metrics = list(self._read())
        except OffloadError:
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from metrics
        took = GaugeMetricFamily(
            "offload_scrape_seconds", "Seconds spent reading the store for this scrape."
        )
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _read(self) -> Iterator[Metric]:
        store = self.app.store
        counts = store.job_counts()
        queues = sorted({queue for queue, _ in counts})
        latency = store.queue_latency(queues)
        processes = store.process_list(gone_after=GONE_AFTER_BEATS * self.app.settings.heartbeat)

        jobs = GaugeMetricFamily(
            "offload_jobs", "Jobs in the store by queue and state.", labels=["queue", "state"]
        )
        for queue in queues:
            for state in STATES:
                jobs.add_metric([queue, state], float(counts.get((queue, state), 0)))
        yield jobs

        late = GaugeMetricFamily(
            "offload_queue_latency_seconds",
            "Seconds since the run_at of the queue's oldest due job (0: none due).",
            labels=["queue"],
        )
        for queue in queues:
            late.add_metric([queue], latency.get(queue, 0.0))
        yield late

        labels = ["worker", "kind", "host"]
        served = CounterMetricFamily(
            "offload_worker_jobs_served",
            "Jobs run by this worker or drain since it started.",
            labels=labels,
        )
        failed = CounterMetricFamily(
            "offload_worker_jobs_failed",
            "Jobs that raised in this worker or drain since it started.",
            labels=labels,
        )
        rss = GaugeMetricFamily(
            "offload_process_rss_bytes",
            "Resident memory of a live process at its last heartbeat.",
            labels=["process", "kind", "host", "pid", "parent"],
        )
        runs = HistogramMetricFamily(
            "offload_job_run_seconds",
            "Run times of the jobs this worker or drain ran since it started.",
            labels=labels,
        )
        by_status: dict[tuple[str, str], int] = {}
        for p in processes:
            by_status[p.kind, p.status] = by_status.get((p.kind, p.status), 0) + 1
            if p.status != "running":
                continue
            rss.add_metric([p.id, p.kind, p.host, str(p.pid), p.parent_id or ""], float(p.rss))
            if p.parent_id is None:
                served.add_metric([p.id, p.kind, p.host], float(p.served))
                failed.add_metric([p.id, p.kind, p.host], float(p.failed))
                published = histogram.from_info(decode(p.info))
                if published is not None:
                    # Bounds spelled as Prometheus clients spell them ("0.005", "1.0").
                    buckets = [(repr(float(le)), float(n)) for le, n in published.buckets]
                    buckets.append(("+Inf", float(published.count)))
                    runs.add_metric([p.id, p.kind, p.host], buckets, published.sum)
        yield served
        yield failed
        yield runs
        yield rss
        table = GaugeMetricFamily(
            "offload_processes",
            "Rows of the process table by kind and status.",
            labels=["kind", "status"],
        )
        for (kind, status), n in sorted(by_status.items()):
            table.add_metric([kind, status], float(n))
        yield table


def registry_for(app: Offload) -> CollectorRegistry:
    """A registry of its own holding one :class:`StoreCollector` (never the global one,
    so two apps in one process do not mix)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(app))
    return registry
