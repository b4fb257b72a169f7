"""Prometheus metrics of the proxy, counted where a request ends.

`outcome_observe` is called once per finished request by outcome_submit: a
counter, the token counters and two histograms, nothing per chunk. What is a
state rather than an event (queue depths, requests in flight, the usage
buffer, the limiter's degraded mode) is read when Prometheus scrapes
(apiproxy.gauges), so it costs nothing on the request path.

Figures are per process: each server process is a scrape target of its own
(docs/deploy.md says why not prometheus_client's multiprocess mode).

Label values are bounded whatever clients send: a model name counts only if
the catalog knows it, an endpoint only if the proxy serves it; anything else
is "other", so that junk requests cannot create unbounded series.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

from apiproxy.catalog import catalog
from apiproxy.parsing import ENDPOINT_CAPABILITY

if TYPE_CHECKING:
    from apiproxy.catalog import CatalogModel
    from usage.outcome import RequestOutcome

ENDPOINTS = frozenset({*ENDPOINT_CAPABILITY, "models"})

REQUESTS = Counter(
    "portico_requests",
    "Finished API requests by model, endpoint, HTTP status and client class "
    "(api or browser).",
    ["model", "endpoint", "status", "client"],
)
TOKENS = Counter(
    "portico_tokens",
    "Metered tokens by model and kind (prompt or completion).",
    ["model", "kind"],
)
TIME_TO_FIRST_TOKEN = Histogram(
    "portico_time_to_first_token_seconds",
    "From the request's arrival to the first generated token (streams).",
    ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
)
DURATION = Histogram(
    "portico_request_duration_seconds",
    "From arrival to the last byte, for requests that reached a backend.",
    ["model"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 600),
)
QUEUE_WAIT = Histogram(
    "portico_queue_wait_seconds",
    "Time a request waited for a concurrency slot (0 when one was free).",
    ["model"],
    buckets=(0.005, 0.05, 0.25, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
BACKEND_ERRORS = Counter(
    "portico_backend_errors",
    "Requests a backend failed, by backend and kind (unreachable, timeout, "
    "overloaded, error, stream_interrupted, stream_timeout).",
    ["backend", "kind"],
)

MEDIA_FETCHES = Counter(
    "portico_media_fetches",
    "Remote media URLs Portico fetched for requests, by outcome (ok, "
    "address_refused, unresolved, too_large, timeout, wrong_type, http_status, "
    "redirects, unreachable, cancelled).",
    ["outcome"],
)
MEDIA_FETCH_BYTES = Counter(
    "portico_media_fetch_bytes",
    "Bytes of the media files Portico fetched and inlined.",
)


class _BackendNames:
    """Backend id -> name from the catalog snapshot, rebuilt only when the
    proxy has loaded a new snapshot (its identity changes)."""

    def __init__(self) -> None:
        self.source: object = None
        self.names: dict[int, str] = {}

    def get(self, models: dict[str, CatalogModel], backend_id: int) -> str:
        if models is not self.source:
            self.names = {
                route.backend_id: route.backend_name
                for model in models.values()
                for route in model.routes
            }
            self.source = models
        return self.names.get(backend_id, str(backend_id))


_backend_names = _BackendNames()


def model_label(model: str) -> str:
    if not model:
        return "none"
    return model if model in catalog.value else "other"


def endpoint_label(endpoint: str) -> str:
    if endpoint in ENDPOINTS:
        return endpoint
    return "models" if endpoint.startswith("models/") else "other"


def backend_error_kind(outcome: RequestOutcome) -> str | None:
    """What went wrong on the backend's side, or None if nothing did."""
    code = outcome.error_code
    if code.startswith("backend_"):
        # backend_unreachable -> unreachable, backend_error -> error, ...
        return code[len("backend_") :]
    if outcome.finish_reason == "backend_error":
        # Failed after the stream began (the relay ends it with an event).
        return "stream_timeout" if outcome.status == 504 else "stream_interrupted"
    return None


def outcome_observe(outcome: RequestOutcome) -> None:
    """Count one finished request. A few dictionary lookups and five metric
    updates at most: measured at about 10 microseconds per request."""
    model = model_label(outcome.model)
    client = "browser" if outcome.source == "browser" else "api"
    REQUESTS.labels(
        model, endpoint_label(outcome.endpoint), str(outcome.status), client
    ).inc()
    if outcome.prompt_tokens > 0:
        TOKENS.labels(model, "prompt").inc(outcome.prompt_tokens)
    if outcome.completion_tokens > 0:
        TOKENS.labels(model, "completion").inc(outcome.completion_tokens)
    if outcome.backend_id is None:
        return  # refused before routing: no latency worth a histogram
    DURATION.labels(model).observe(outcome.duration_ms / 1000)
    ttft = outcome.ttft_ms
    if ttft is not None:
        TIME_TO_FIRST_TOKEN.labels(model).observe(ttft / 1000)
    kind = backend_error_kind(outcome)
    if kind is not None:
        backend = _backend_names.get(catalog.value, outcome.backend_id)
        BACKEND_ERRORS.labels(backend, kind).inc()


def queue_wait_observe(*, model: str, seconds: float) -> None:
    """Called by the queue when a request gets its slot; `model` is a public
    id the catalog admitted."""
    QUEUE_WAIT.labels(model).observe(seconds)


def media_fetch_observe(*, outcome: str, size: int) -> None:
    """Called once per media URL fetched (or refused while fetching);
    `outcome` is one of the fixed labels above."""
    MEDIA_FETCHES.labels(outcome).inc()
    if size:
        MEDIA_FETCH_BYTES.inc(size)
