"""The proxy's endpoints: each one a straight line through the steps
parse, authenticate, admit, route, relay, observe."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from accounts.selectors import KeyPrincipal
from apiproxy.catalog import CatalogModel, Route, catalog
from apiproxy.errors import ProxyError, backend_unreachable
from apiproxy.guard import DisconnectGuard
from apiproxy.http import Headers, Receive, TrackedSend, body_read, json_send
from apiproxy.limits import buckets_for, limit_tables
from apiproxy.observer import StreamObserver
from apiproxy.outcome import RequestOutcome
from apiproxy.parsing import ENDPOINT_CAPABILITY, ParsedRequest, request_parse
from apiproxy.queueing import PositionCallback, board, slot_wait
from apiproxy.ratelimit import Bucket, rate_limiter
from apiproxy.relay import (
    BackendRefused,
    relay_json,
    relay_stream,
    upstream_error,
    upstream_headers,
    upstream_open,
)
from apiproxy.routing import picker
from apiproxy.slots import slot_key
from usage.quota import quota_admit

logger = logging.getLogger(__name__)


@dataclass
class Exchange:
    """One request in flight: what every step reads and the outcome it fills."""

    receive: Receive
    send: TrackedSend
    headers: Headers
    principal: KeyPrincipal
    outcome: RequestOutcome
    response_headers: list[tuple[bytes, bytes]]
    browser: bool = False
    # Set once the SSE response has begun (queue position lines, or the relay):
    # from then on failures end the stream instead of getting a status code.
    stream_started: bool = False

    async def stream_start(self) -> None:
        if self.stream_started:
            return
        self.stream_started = True
        await self.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                    *self.response_headers,
                ],
            }
        )
        self.outcome.status = 200


def model_public(model: CatalogModel) -> dict[str, Any]:
    return {
        "id": model.public_id,
        "object": "model",
        "created": model.created,
        "owned_by": model.owned_by,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "capabilities": sorted(model.capabilities),
    }


def _visible(model: CatalogModel, principal: KeyPrincipal) -> bool:
    return model.allowed_for(principal.group_ids) and principal.allows_model(
        model.public_id
    )


async def models_list(exchange: Exchange) -> None:
    models = await catalog.current()
    data = [
        model_public(model)
        for model in sorted(models.values(), key=lambda m: m.public_id)
        if _visible(model, exchange.principal)
    ]
    body = json.dumps({"object": "list", "data": data}).encode()
    exchange.outcome.status = 200
    await json_send(
        exchange.send, status=200, body=body, headers=exchange.response_headers
    )


async def model_retrieve(exchange: Exchange, public_id: str) -> None:
    models = await catalog.current()
    model = models.get(public_id)
    if model is None or not _visible(model, exchange.principal):
        raise model_not_found(public_id)
    exchange.outcome.status = 200
    body = json.dumps(model_public(model)).encode()
    await json_send(
        exchange.send, status=200, body=body, headers=exchange.response_headers
    )


def model_not_found(public_id: str) -> ProxyError:
    return ProxyError(
        404,
        f"The model '{public_id}' does not exist. List the available models "
        "with GET /v1/models.",
        code="model_not_found",
        param="model",
    )


async def model_admit(
    principal: KeyPrincipal, public_id: str, capability: str
) -> CatalogModel:
    """Step 3 (model part): the model exists, may be used, and can do this."""
    model = (await catalog.current()).get(public_id)
    if model is None:
        raise model_not_found(public_id)
    if not model.allowed_for(principal.group_ids):
        raise ProxyError(
            403,
            f"You are not allowed to use the model '{public_id}'. Ask the "
            "portal's operators for access.",
            type="permission_error",
            code="model_not_allowed",
            param="model",
        )
    if not principal.allows_model(public_id):
        raise ProxyError(
            403,
            f"This API key is limited to other models and may not use '{public_id}'.",
            type="permission_error",
            code="model_not_allowed",
            param="model",
        )
    if capability not in model.capabilities:
        raise ProxyError(
            501,
            f"The model '{public_id}' does not support {capability}. Models that "
            f"do are listed by GET /v1/models (see 'capabilities').",
            type="unsupported",
            code="unsupported_capability",
            param="model",
        )
    if not model.routes:
        raise ProxyError(
            503,
            f"The model '{public_id}' is not served by any backend right now.",
            type="server_error",
            code="model_unavailable",
            headers=[(b"retry-after", b"30")],
        )
    return model


def context_fit(parsed: ParsedRequest, model: CatalogModel) -> None:
    """Refuse prompts that cannot fit; clamp the answer length to what fits."""
    if parsed.endpoint in ("embeddings",):
        return
    window = model.context_window
    if parsed.prompt_estimate >= window:
        raise ProxyError(
            400,
            f"This model's maximum context length is {window} tokens. Your "
            f"messages come to about {parsed.prompt_estimate} tokens. Shorten them.",
            code="context_length_exceeded",
            param="messages" if parsed.endpoint == "chat/completions" else "prompt",
        )
    ceiling = window - parsed.prompt_estimate
    if model.max_output_tokens:
        ceiling = min(ceiling, model.max_output_tokens)
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = parsed.body.get(name)
        if isinstance(value, int) and value > ceiling:
            parsed.body[name] = ceiling


def upstream_body(parsed: ParsedRequest, route: Route) -> bytes:
    body = parsed.body
    body["model"] = route.upstream_model
    if parsed.stream and parsed.endpoint in ("chat/completions", "completions"):
        # Always ask for usage: it is what the meter bills. The observer
        # removes the extra chunk when the client did not ask for it.
        options = body.get("stream_options") or {}
        body["stream_options"] = {**options, "include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


async def completion_handle(exchange: Exchange, endpoint: str) -> None:
    raw = await body_read(
        exchange.receive, exchange.headers, limit=settings.MAX_REQUEST_BYTES
    )
    parsed = request_parse(endpoint, raw)
    outcome = exchange.outcome
    outcome.model, outcome.stream = parsed.model, parsed.stream
    outcome.prompt_tokens = parsed.prompt_estimate
    model = await model_admit(
        exchange.principal, parsed.model, ENDPOINT_CAPABILITY[endpoint]
    )
    quota = await quota_admit(
        user_id=exchange.principal.user_id,
        group_ids=exchange.principal.group_ids,
        model_weight=model.quota_weight,
    )
    exchange.response_headers.extend(quota.headers())
    context_fit(parsed, model)
    buckets = await _rate_admit(exchange, parsed)
    try:
        async with DisconnectGuard(
            exchange.receive, response_finished=lambda: exchange.send.finished
        ) as guard:
            await _relay_with_failover(exchange, parsed, model)
        if guard.disconnected:
            outcome.finish_reason = "client_disconnect"
    finally:
        # The admission charged the estimate; settle with the real count.
        spent = outcome.prompt_tokens + outcome.completion_tokens
        await rate_limiter.charge(buckets, spent - parsed.prompt_estimate)


async def _rate_admit(exchange: Exchange, parsed: ParsedRequest) -> list[Bucket]:
    principal = exchange.principal
    tables = await limit_tables.current()
    buckets = buckets_for(
        tables,
        user_id=principal.user_id,
        group_ids=principal.group_ids,
        key_id=None if exchange.browser else principal.key_id,
        browser=exchange.browser,
    )
    verdict = await rate_limiter.admit(
        buckets, cost=parsed.prompt_estimate, request_id=exchange.outcome.request_id
    )
    if not verdict.allowed:
        wait = max(1, -(-verdict.retry_after_ms // 1000))
        raise ProxyError(
            429,
            f"Rate limit exceeded: {verdict.limit_requests or 'your'} requests per "
            f"minute (tokens: {verdict.limit_tokens or 'unlimited'}). Try again in "
            f"{wait} s.",
            type="requests",
            code="rate_limit_exceeded",
            headers=verdict.headers(),
            outcome="rate_limited",
        )
    exchange.response_headers.extend(verdict.headers())
    return buckets


async def _relay_with_failover(
    exchange: Exchange, parsed: ParsedRequest, model: CatalogModel
) -> None:
    tried: set[int] = set()
    for _ in range(len(model.routes)):
        route = picker.choose(model)
        if route is None or route.backend_id in tried:
            break
        tried.add(route.backend_id)
        exchange.outcome.backend_id = route.backend_id
        # Counted in flight from the moment it is assigned, so that requests
        # arriving together spread over the routes while they wait for slots.
        picker.acquire(route)
        lease = None
        try:
            lease = await slot_wait(
                backend_id=route.backend_id,
                upstream_model=route.upstream_model,
                cap=route.max_concurrency,
                user_id=exchange.principal.user_id,
                browser=exchange.browser,
                public_model=parsed.model,
                on_position=_position_reporter(exchange, parsed),
            )
            await _relay_once(exchange, parsed, route)
            return
        except BackendRefused:
            picker.mark_refused(route)
            logger.warning(
                "backend %s refused a connection; trying another", route.backend_name
            )
        finally:
            picker.release(route)
            if lease is not None:
                key = slot_key(route.backend_id, route.upstream_model)
                await board.release(key, lease)
    raise backend_unreachable(parsed.model)


def _position_reporter(exchange: Exchange, parsed: ParsedRequest) -> PositionCallback | None:
    """Streaming clients learn their place in line as SSE comment lines (which
    SDKs ignore); others simply wait."""
    if not parsed.stream:
        return None

    async def report(place: int) -> None:
        await exchange.stream_start()
        line = f": waiting for '{parsed.model}', position {place} in line\n\n"
        await exchange.send(
            {"type": "http.response.body", "body": line.encode(), "more_body": True}
        )

    return report


async def _relay_once(exchange: Exchange, parsed: ParsedRequest, route: Route) -> None:
    outcome = exchange.outcome
    response = await upstream_open(
        route,
        parsed.endpoint,
        data=upstream_body(parsed, route),
        headers=upstream_headers(route, outcome.request_id, "application/json"),
        model=parsed.model,
    )
    picker.mark_answered(route)
    finished = False
    try:
        if response.status >= 400:
            raise await upstream_error(response, parsed.model)
        if parsed.stream:
            observer = StreamObserver(
                strip_usage=not parsed.client_wants_usage,
                synthesise_usage=parsed.client_wants_usage,
                model=parsed.model,
            )
            await exchange.stream_start()
            await relay_stream(
                exchange.send,
                response,
                outcome=outcome,
                observer=observer,
                upstream_model=route.upstream_model,
            )
        else:
            await relay_json(
                exchange.send,
                response,
                outcome=outcome,
                response_headers=exchange.response_headers,
                public_model=parsed.model,
                upstream_model=route.upstream_model,
            )
        finished = True
    finally:
        if finished:
            response.release()
        else:
            # Closing (not releasing) drops the connection, which is how the
            # backend learns that nobody is reading any more.
            response.close()
