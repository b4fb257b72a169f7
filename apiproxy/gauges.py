"""Scrape-time gauges: the proxy's state, read when Prometheus asks.

Queue depths, requests in flight, the usage buffer, the key cache and the
limiter's degraded mode already live in this process's memory; a collector
reads each one's `stats()` (apiproxy.queueing, routing, slots, ratelimit,
usage.buffer, accounts.keycache) at scrape time, so the request path does no
extra work for them. Collected on the event loop
that mutates them (ops.probes serves /metrics there), never from another
thread.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import REGISTRY, Collector

from accounts.keycache import key_cache
from apiproxy.catalog import CatalogModel, catalog
from apiproxy.looplag import loop_lag
from apiproxy.queueing import board
from apiproxy.ratelimit import rate_limiter
from apiproxy.routing import picker
from apiproxy.slots import slot_pool
from usage.buffer import usage_buffer


class ProxyStateCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        names, public = _route_names(catalog.value)
        waiting = board.stats()
        yield _backend_health(catalog.value)
        yield _queue_depth(waiting, names, public)
        yield _in_flight(waiting, names)
        yield from _usage_buffer()
        yield _key_cache()
        yield _degraded()
        yield from _loop_lag()
        yield _slot_leases()


def _route_names(
    models: dict[str, CatalogModel],
) -> tuple[dict[int, str], dict[tuple[int, str], str]]:
    """Backend names by id, and public model ids by route."""
    names: dict[int, str] = {}
    public: dict[tuple[int, str], str] = {}
    for model in models.values():
        for route in model.routes:
            names.setdefault(route.backend_id, route.backend_name)
            public[(route.backend_id, route.upstream_model)] = model.public_id
    return names, public


def _backend_health(models: dict[str, CatalogModel]) -> Metric:
    healthy = GaugeMetricFamily(
        "portico_backend_healthy",
        "1 while the backend passes its health checks (as of this "
        "process's copy of the catalog).",
        labels=["backend"],
    )
    seen: set[int] = set()
    for model in models.values():
        for route in model.routes:
            if route.backend_id not in seen:
                seen.add(route.backend_id)
                healthy.add_metric([route.backend_name], float(route.healthy))
    return healthy


def _queue_depth(
    waiting: dict[tuple[int, str], int],
    names: dict[int, str],
    public: dict[tuple[int, str], str],
) -> Metric:
    depth = GaugeMetricFamily(
        "portico_queue_depth",
        "Requests of this process waiting for a concurrency slot.",
        labels=["model", "backend"],
    )
    for (backend_id, upstream), count in waiting.items():
        model = public.get((backend_id, upstream), upstream)
        depth.add_metric([model, names.get(backend_id, str(backend_id))], count)
    return depth


def _in_flight(waiting: dict[tuple[int, str], int], names: dict[int, str]) -> Metric:
    # The router counts a request from its assignment to a backend, so those
    # still waiting for a slot are taken off to leave the running.
    running: defaultdict[str, int] = defaultdict(int)
    for route, count in picker.stats().items():
        backend = names.get(route[0], str(route[0]))
        running[backend] += max(0, count - waiting.get(route, 0))
    in_flight = GaugeMetricFamily(
        "portico_backend_in_flight",
        "Requests this process is relaying to each backend.",
        labels=["backend"],
    )
    for backend in names.values():
        running.setdefault(backend, 0)
    for backend, count in sorted(running.items()):
        in_flight.add_metric([backend], count)
    return in_flight


def _usage_buffer() -> Iterator[Metric]:
    stats = usage_buffer.stats()
    yield GaugeMetricFamily(
        "portico_usage_buffer_records",
        "Usage records waiting in this process to be written.",
        value=stats.pending,
    )
    yield CounterMetricFamily(
        "portico_usage_flush_failures",
        "Batch writes of usage records that failed (and are retried).",
        value=stats.flush_failures,
    )
    yield CounterMetricFamily(
        "portico_usage_records_spooled",
        "Usage records spooled to disk while the database was unreachable.",
        value=stats.spilled,
    )


def _key_cache() -> Metric:
    return GaugeMetricFamily(
        "portico_key_cache_entries",
        "API keys (and refused look-ups) this process holds in its key cache.",
        value=key_cache.stats().entries,
    )


def _degraded() -> Metric:
    degraded = GaugeMetricFamily(
        "portico_limiter_degraded",
        "1 while Redis is unreachable and this process enforces limits "
        "(rate) or concurrency caps (slots) on its own.",
        labels=["part"],
    )
    degraded.add_metric(["rate"], float(rate_limiter.stats().degraded))
    degraded.add_metric(["slots"], float(slot_pool.stats().degraded))
    return degraded


def _slot_leases() -> Metric:
    return GaugeMetricFamily(
        "portico_slot_leases_held",
        "Per-model concurrency slots this process holds (one per request at a "
        "backend; a lease left held after the request ended is a leak).",
        value=slot_pool.stats().leases,
    )


def _loop_lag() -> Iterator[Metric]:
    stats = loop_lag.stats()
    yield GaugeMetricFamily(
        "portico_event_loop_lag_p99_seconds",
        "How late this process's event loop ran a due timer: 99th percentile "
        "over the last minute.",
        value=stats.p99,
    )
    yield GaugeMetricFamily(
        "portico_event_loop_lag_max_seconds",
        "How late this process's event loop ran a due timer: the most over the "
        "last minute.",
        value=stats.max,
    )


_collector: ProxyStateCollector | None = None


def gauges_register() -> None:
    """Add the collector to the default registry, once per process."""
    global _collector
    if _collector is None:
        _collector = ProxyStateCollector()
        REGISTRY.register(_collector)
