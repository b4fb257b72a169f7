"""N mixed requests through the real proxy, checked against the fake backend's
own ledger: exactly one usage record each, token counts equal to what the
backend produced and the client received, no duplicates."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fakebackend_payloads import prompt_tokens_count
from tests.fixtures_proxy import ProxyRig, model_register
from usage.models import UsageRecord

# One model per backend behaviour, so requests steer the fake by name.
MODELS = {
    "chat-usage": {},
    "chat-silent": {"usage": "never"},  # a backend that never reports usage
    "chat-slow": {"tokens": 200, "token_delay": 0.02},
    "chat-dies": {"tokens": 30, "die_after_chunks": 6},
    "chat-fails": {"tokens": 30, "error_after_chunks": 4},
}
PROMPT = [{"role": "user", "content": "count the tokens of this short prompt"}]


@dataclass
class Sent:
    request_id: str
    model: str
    endpoint: str
    stream: bool
    client_tokens: int  # content pieces the client received
    kind: str  # "complete", "disconnect", "died"
    asked_usage: bool = False
    client_usage: dict[str, int] | None = None


def stream_read(
    http: httpx.Client, endpoint: str, body: dict[str, Any], stop_after: int | None
) -> tuple[str, int, dict[str, int] | None]:
    """POST a stream, read `stop_after` data events (all when None), leave."""
    received, usage = 0, None
    with http.stream("POST", f"/v1/{endpoint}", json=body) as response:
        assert response.status_code == 200, response.read()
        request_id = response.headers["x-request-id"]
        if stop_after == 0:
            return request_id, 0, None
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                break
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") or choice.get("text")
                received += bool(piece)
            if event.get("usage"):
                usage = event["usage"]
            if stop_after is not None and received >= stop_after:
                break
    return request_id, received, usage


def plain(http: httpx.Client, endpoint: str, body: dict[str, Any]) -> tuple[str, int]:
    response = http.post(f"/v1/{endpoint}", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    pieces = sum(
        len(((c.get("message") or {}).get("content") or c.get("text") or "").split())
        for c in data.get("choices", [])
    )
    return response.headers["x-request-id"], pieces


def scenarios() -> list[tuple[str, Callable[[httpx.Client], Sent]]]:
    def chat(model: str, **extra: Any) -> dict[str, Any]:
        return {"model": model, "messages": PROMPT, **extra}

    def non_stream(
        model: str, endpoint: str = "chat/completions"
    ) -> Callable[..., Sent]:
        def run(http: httpx.Client) -> Sent:
            body = chat(model)
            if endpoint == "completions":
                body = {"model": model, "prompt": "count these words"}
            request_id, pieces = plain(http, endpoint, body)
            return Sent(request_id, model, endpoint, False, pieces, "complete")

        return run

    def stream(
        model: str,
        *,
        usage: bool,
        stop_after: int | None = None,
        kind: str = "complete",
        endpoint: str = "chat/completions",
    ) -> Callable[..., Sent]:
        def run(http: httpx.Client) -> Sent:
            extra: dict[str, Any] = {"stream": True}
            if usage:
                extra["stream_options"] = {"include_usage": True}
            body = chat(model, **extra)
            if endpoint == "completions":
                body = {"model": model, "prompt": "count these words", **extra}
            request_id, received, seen = stream_read(http, endpoint, body, stop_after)
            return Sent(request_id, model, endpoint, True, received, kind, usage, seen)

        return run

    def cut(after: int, usage: bool) -> Callable[..., Sent]:
        return stream("chat-slow", usage=usage, stop_after=after, kind="disconnect")

    def dies(model: str, usage: bool) -> Callable[..., Sent]:
        return stream(model, usage=usage, kind="died")

    return [
        ("non-stream, usage reported", non_stream("chat-usage")),
        ("non-stream, backend never reports", non_stream("chat-silent")),
        ("non-stream completions", non_stream("chat-usage", "completions")),
        ("stream, client asks usage", stream("chat-usage", usage=True)),
        ("stream, client does not ask", stream("chat-usage", usage=False)),
        ("stream, backend never reports", stream("chat-silent", usage=False)),
        ("stream, asks, backend never reports", stream("chat-silent", usage=True)),
        (
            "stream completions",
            stream("chat-usage", usage=True, endpoint="completions"),
        ),
        ("disconnect at chunk 0", cut(0, usage=False)),
        ("disconnect at chunk 1", cut(1, usage=True)),
        ("disconnect at chunk 10", cut(10, usage=False)),
        ("backend dies mid-stream", dies("chat-dies", usage=False)),
        ("backend dies, client asked usage", dies("chat-dies", usage=True)),
        ("backend sends an error event", dies("chat-fails", usage=True)),
    ]


@pytest.fixture
def ledger_proxy(proxy: ProxyRig) -> ProxyRig:
    proxy.backend.behaviour.models = list(MODELS)
    for model, behaviour in MODELS.items():
        if behaviour:
            proxy.backend.for_model(model, **behaviour)
    model_register(proxy.backend)
    return proxy


def produced_tokens(received: Any, endpoint: str, stream: bool) -> int:
    """Content tokens the fake put on the wire for one request."""
    payload = received.json
    limit = payload.get("max_tokens")
    behaviour = {"tokens": 8, **MODELS[payload["model"]]}
    planned = min(behaviour["tokens"], limit) if limit else behaviour["tokens"]
    if not stream:
        return planned
    role_chunk = 1 if endpoint == "chat/completions" else 0
    return max(0, min(planned, received.chunks_sent - role_chunk))


def test_n_mixed_requests_give_exactly_n_records_that_match_the_backend(
    ledger_proxy: ProxyRig,
) -> None:
    proxy = ledger_proxy
    sent: list[Sent] = []
    with proxy.http() as http:
        for _round in range(2):
            for _name, run in scenarios():
                sent.append(run(http))
    ids = [item.request_id for item in sent]
    assert len(set(ids)) == len(sent)
    for request_id in ids:
        proxy.usage_record(request_id)
    # Cancellations reach the backend asynchronously: let the ledger settle.
    proxy.backend.wait_for(
        lambda fake: all(r.finished_at for r in fake.requests()), timeout=10
    )
    records = {r.request_id: r for r in UsageRecord.objects.filter(user=proxy.user)}
    assert set(records) == set(ids), "exactly one record per request, no strays"
    upstream = {
        r.headers["x-request-id"]: r
        for r in proxy.backend.requests()
        if r.method == "POST"
    }
    total_backend = total_billed = 0
    for item in sent:
        record, received = records[item.request_id], upstream[item.request_id]
        produced = produced_tokens(received, item.endpoint, item.stream)
        label = f"{item.model} {item.kind} stream={item.stream}: {record.__dict__}"
        if item.kind == "disconnect":
            assert record.finish_reason == "client_disconnect", label
            assert record.prompt_tokens > 0, "the prompt is billed"
            assert item.client_tokens <= record.completion_tokens <= produced, label
            total_backend += produced
            total_billed += record.completion_tokens
            continue
        if item.model == "chat-silent" and not item.stream:
            # Nothing to count in a plain answer without usage: estimated
            # from its length, never billed as zero.
            assert record.usage_source == "estimated", label
            assert produced / 2 <= record.completion_tokens <= produced * 2, label
            continue
        assert record.completion_tokens == produced == item.client_tokens, label
        total_backend += produced
        total_billed += record.completion_tokens
        if item.kind == "died":
            assert record.finish_reason == "backend_error", label
            assert record.usage_source == "counted", label
        elif item.model == "chat-silent":
            assert record.usage_source == "counted", label
            if item.client_usage is not None:  # synthesised for the client
                assert item.client_usage["completion_tokens"] == produced, label
        else:
            assert record.usage_source == "reported", label
            assert record.prompt_tokens == prompt_tokens_count(received.json), label
            assert record.status == 200 and record.finish_reason == "stop", label
        if item.stream:
            options = received.json.get("stream_options") or {}
            assert options.get("include_usage"), "the proxy always asks for usage"
        if item.stream and item.kind == "complete":
            # The client sees a usage chunk exactly when it asked for one.
            assert (item.client_usage is not None) == item.asked_usage, label
    disconnects = [item for item in sent if item.kind == "disconnect"]
    assert total_billed <= total_backend
    assert total_backend - total_billed <= 3 * len(disconnects)
