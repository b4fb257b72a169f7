"""/metrics: scraped before and after real requests through the proxy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from apiproxy.ratelimit import rate_limiter
from catalog.models import Backend
from ops.probes import metrics_allowed
from tests.fixtures_proxy import ProxyRig
from usage.buffer import usage_buffer

pytestmark = pytest.mark.django_db(transaction=True)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, **headers: str) -> Samples:
    response = httpx.get(url + "/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_until(
    url: str, condition: Callable[[Samples], bool], within: float = 5.0
) -> Samples:
    """The outcome is counted just after the last byte leaves: poll briefly."""
    deadline = time.monotonic() + within
    while True:
        samples = scrape(url)
        if condition(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.02)


CHAT = {"model": "fake-chat", "endpoint": "chat/completions", "client": "api"}


def test_metrics_change_as_requests_flow(proxy: ProxyRig) -> None:
    url = proxy.server.url
    before = scrape(url)
    stream = proxy.openai().chat.completions.create(
        model="fake-chat",
        messages=[{"role": "user", "content": "count to eight"}],
        stream=True,
    )
    assert len([chunk for chunk in stream if chunk.choices]) >= 8
    ok = {**CHAT, "status": "200"}
    after = scrape_until(
        url,
        lambda s: (
            value(s, "portico_requests_total", **ok)
            == value(before, "portico_requests_total", **ok) + 1
        ),
    )

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("portico_requests_total", **ok) == 1
    assert grew("portico_tokens_total", model="fake-chat", kind="completion") == 8
    assert grew("portico_tokens_total", model="fake-chat", kind="prompt") >= 1
    for histogram in (
        "portico_time_to_first_token_seconds",
        "portico_request_duration_seconds",
        "portico_queue_wait_seconds",
    ):
        assert grew(f"{histogram}_count", model="fake-chat") == 1, histogram
    assert grew("portico_request_duration_seconds_sum", model="fake-chat") > 0
    assert value(after, "portico_backend_healthy", backend="fake") == 1


def test_refusals_count_with_bounded_labels(proxy: ProxyRig) -> None:
    url = proxy.server.url
    before = scrape(url)
    with proxy.http() as client:
        unknown = client.post(
            "/v1/chat/completions",
            json={"model": "junk-4711", "messages": [{"role": "user", "content": "x"}]},
        )
        nowhere = client.get("/v1/no/such/route/4711")
    anonymous = httpx.post(url + "/v1/chat/completions", json={})
    assert (unknown.status_code, nowhere.status_code) == (404, 404)
    assert anonymous.status_code == 401
    after = scrape_until(
        url,
        lambda s: (
            value(
                s,
                "portico_requests_total",
                **{**CHAT, "model": "none", "status": "401"},
            )
            > value(
                before,
                "portico_requests_total",
                **{**CHAT, "model": "none", "status": "401"},
            )
        ),
    )
    other = {**CHAT, "model": "other", "status": "404"}
    assert value(after, "portico_requests_total", **other) == (
        value(before, "portico_requests_total", **other) + 1
    )
    routes = {"model": "none", "endpoint": "other", "status": "404", "client": "api"}
    assert value(after, "portico_requests_total", **routes) >= 1
    text = httpx.get(url + "/metrics").text
    assert "junk-4711" not in text and "no/such/route" not in text
    # Refused before routing: no latency observed for them.
    assert value(after, "portico_request_duration_seconds_count", model="other") == 0


def test_backend_errors_are_counted_by_kind(proxy: ProxyRig) -> None:
    url = proxy.server.url
    before = scrape(url)
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}
    proxy.backend.script({"status": 500})
    with proxy.http() as client:
        assert client.post("/v1/chat/completions", json=body).status_code == 502
        with proxy.backend.refusing():
            assert client.post("/v1/chat/completions", json=body).status_code == 502
    after = scrape_until(
        url,
        lambda s: (
            value(s, "portico_backend_errors_total", backend="fake", kind="unreachable")
            > 0
        ),
    )
    for kind in ("error", "unreachable"):
        labels = {"backend": "fake", "kind": kind}
        assert value(after, "portico_backend_errors_total", **labels) == (
            value(before, "portico_backend_errors_total", **labels) + 1
        ), kind


def test_queue_depth_and_in_flight_show_while_requests_wait(proxy: ProxyRig) -> None:
    Backend.objects.update(max_concurrency=1)
    proxy.backend.behaviour.token_delay = 0.1
    url = proxy.server.url
    assert value(scrape(url), "portico_backend_in_flight", backend="fake") == 0

    def ask() -> None:
        with proxy.http() as client:
            client.post(
                "/v1/chat/completions",
                json={
                    "model": "fake-chat",
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    busy = scrape_until(
        url,
        lambda s: (
            value(s, "portico_queue_depth", model="fake-chat", backend="fake") == 1
        ),
    )
    assert value(busy, "portico_queue_depth", model="fake-chat", backend="fake") == 1
    assert value(busy, "portico_backend_in_flight", backend="fake") == 1
    for thread in threads:
        thread.join(timeout=20)
    idle = scrape_until(
        url, lambda s: value(s, "portico_backend_in_flight", backend="fake") == 0
    )
    assert value(idle, "portico_queue_depth", model="fake-chat", backend="fake") == 0
    # The second request waited for the first one's slot.
    assert value(idle, "portico_queue_wait_seconds_sum", model="fake-chat") >= 0.5


def test_buffer_and_limiter_state_are_read_at_scrape_time(
    proxy: ProxyRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limiter, "degraded", True)
    monkeypatch.setattr(usage_buffer, "flush_failures", 3)
    samples = scrape(proxy.server.url)
    assert value(samples, "portico_limiter_degraded", part="rate") == 1
    assert value(samples, "portico_limiter_degraded", part="slots") == 0
    assert value(samples, "portico_usage_flush_failures_total") == 3
    assert ("portico_usage_buffer_records", ()) in samples
    monkeypatch.setattr(rate_limiter, "degraded", False)
    assert value(scrape(proxy.server.url), "portico_limiter_degraded", part="rate") == 0


def test_metrics_are_refused_outside_the_networks_without_the_token(
    proxy: ProxyRig, settings: Any
) -> None:
    url = proxy.server.url + "/metrics"
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert httpx.get(url).status_code == 403
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    assert httpx.get(url).status_code == 403
    wrong = {"authorization": "Bearer scrape-token-wrong"}
    assert httpx.get(url, headers=wrong).status_code == 403
    right = {"authorization": "Bearer scrape-token-0123456789"}
    assert httpx.get(url, headers=right).status_code == 200
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.1"]
    assert httpx.get(url).status_code == 200


@pytest.mark.parametrize(
    ("client", "allowed"),
    [
        (("127.0.0.1", 5000), True),
        (("::1", 5000), True),
        (("192.0.2.7", 5000), False),
        (None, False),  # a Unix socket: could be anyone behind a proxy
    ],
)
def test_the_default_networks_are_loopback_only(
    client: tuple[str, int] | None, allowed: bool
) -> None:
    assert metrics_allowed({"client": client, "headers": []}) is allowed
