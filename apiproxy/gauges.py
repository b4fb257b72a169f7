"""Scrape-time gauges: the proxy's state, read when Prometheus asks.

Queue depths, requests in flight, the usage buffer and the limiter's degraded
mode already live in this process's memory (apiproxy.queueing, routing,
slots, ratelimit, usage.buffer); a collector reads them at scrape time, so
the request path does no extra work for them. Collected on the event loop
that mutates them (ops.probes serves /metrics there), never from another
thread.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import REGISTRY, Collector

from apiproxy.catalog import catalog
from apiproxy.queueing import board
from apiproxy.ratelimit import rate_limiter
from apiproxy.routing import picker
from apiproxy.slots import slot_key, slot_pool
from usage.buffer import usage_buffer


class ProxyStateCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        models = catalog.value
        names: dict[int, str] = {}
        public: dict[str, str] = {}  # slot key -> public model id
        healthy = GaugeMetricFamily(
            "portico_backend_healthy",
            "1 while the backend passes its health checks (as of this "
            "process's copy of the catalog).",
            labels=["backend"],
        )
        for model in models.values():
            for route in model.routes:
                if route.backend_id not in names:
                    names[route.backend_id] = route.backend_name
                    healthy.add_metric([route.backend_name], float(route.healthy))
                public[slot_key(route.backend_id, route.upstream_model)] = (
                    model.public_id
                )
        yield healthy

        depth = GaugeMetricFamily(
            "portico_queue_depth",
            "Requests of this process waiting for a concurrency slot.",
            labels=["model", "backend"],
        )
        waiting: dict[str, int] = {}
        for key, queue in list(board.queues.items()):
            _, _, backend_id, upstream = key.split(":", 3)
            waiting[key] = queue.waiting
            backend = names.get(int(backend_id), backend_id)
            depth.add_metric([public.get(key, upstream), backend], queue.waiting)
        yield depth

        # The router counts a request from its assignment to a backend, so
        # those still waiting for a slot are taken off to leave the running.
        running: defaultdict[str, int] = defaultdict(int)
        for (backend_id, upstream), count in list(picker.in_flight.items()):
            queued = waiting.get(slot_key(backend_id, upstream), 0)
            backend = names.get(backend_id, str(backend_id))
            running[backend] += max(0, count - queued)
        in_flight = GaugeMetricFamily(
            "portico_backend_in_flight",
            "Requests this process is relaying to each backend.",
            labels=["backend"],
        )
        for backend in names.values():
            running.setdefault(backend, 0)
        for backend, count in sorted(running.items()):
            in_flight.add_metric([backend], count)
        yield in_flight

        yield GaugeMetricFamily(
            "portico_usage_buffer_records",
            "Usage records waiting in this process to be written.",
            value=usage_buffer.pending,
        )
        yield CounterMetricFamily(
            "portico_usage_flush_failures",
            "Batch writes of usage records that failed (and are retried).",
            value=usage_buffer.flush_failures,
        )
        yield CounterMetricFamily(
            "portico_usage_records_spooled",
            "Usage records spooled to disk while the database was unreachable.",
            value=usage_buffer.spilled,
        )
        degraded = GaugeMetricFamily(
            "portico_limiter_degraded",
            "1 while Redis is unreachable and this process enforces limits "
            "(rate) or concurrency caps (slots) on its own.",
            labels=["part"],
        )
        degraded.add_metric(["rate"], float(rate_limiter.degraded))
        slots_down = time.monotonic() < slot_pool.redis_down_until
        degraded.add_metric(["slots"], float(slots_down))
        yield degraded


_collector: ProxyStateCollector | None = None


def gauges_register() -> None:
    """Add the collector to the default registry, once per process."""
    global _collector
    if _collector is None:
        _collector = ProxyStateCollector()
        REGISTRY.register(_collector)
