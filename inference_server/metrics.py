"""Prometheus metrics, served on their own port so that scraping never touches the gRPC front."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily


class _WorkerMemory:
    """Resident memory of each worker process, read at scrape time."""

    def __init__(self, pids: Callable[[], list[tuple[int, int]]]) -> None:
        self._pids = pids

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("keygrip_worker_resident_bytes", "Resident memory of a worker process",
                                   labels=["worker"])
        for index, pid in self._pids():
            try:
                family.add_metric([str(index)], psutil.Process(pid).memory_info().rss)
            except psutil.Error:
                continue
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queue_depth = Gauge("keygrip_queue_depth", "Jobs waiting for a worker", registry=self.registry)
        self.jobs_total = Counter("keygrip_jobs", "Jobs that ended, by type and final state",
                                  ["type", "state"], registry=self.registry)
        self.job_seconds = Histogram("keygrip_job_duration_seconds", "Run time of jobs by type",
                                     ["type", "state"], registry=self.registry,
                                     buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
        self.failures = Counter("keygrip_job_failures", "Failed jobs by type and status code",
                                ["type", "code"], registry=self.registry)

    def watch_workers(self, pids: Callable[[], list[tuple[int, int]]]) -> None:
        self.registry.register(_WorkerMemory(pids))

    def serve(self, address: str) -> int:
        """Start the HTTP exporter on host:port (port 0 picks one); returns the port."""
        host, port = address.rsplit(":", 1)
        server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=self.registry)
        return server.server_port
