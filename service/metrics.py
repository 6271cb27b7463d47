"""The API process's Prometheus metrics, served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily

from service.jobstore import JobStore


class Metrics:
    def __init__(self, store: JobStore):
        self.registry = CollectorRegistry()
        self.submitted = Counter(
            "mochi_jobs_submitted", "Jobs accepted by this API process", registry=self.registry
        )
        self.rejected = Counter(
            "mochi_requests_rejected",
            "Requests refused, by HTTP status",
            ["status"],
            registry=self.registry,
        )
        queue = Gauge("mochi_queue_length", "Jobs waiting in the queue", registry=self.registry)
        queue.set_function(store.queue_length)
        self.registry.register(SweptCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class SweptCollector:
    """`mochi_swept_total{kind=...}`: what the sweeper deleted, from its counters in Redis
    (shared by every API replica and the sweeper, so they survive restarts)."""

    def __init__(self, store: JobStore):
        self.store = store

    def describe(self):
        return []  # not read at registration: Redis may be down then

    def collect(self):
        family = CounterMetricFamily(
            "mochi_swept", "Expired jobs and orphaned files deleted, by kind", labels=["kind"]
        )
        for kind, count in sorted(self.store.swept_counts().items()):
            family.add_metric([kind], count)
        yield family
