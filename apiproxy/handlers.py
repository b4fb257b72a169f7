"""The completion endpoints: each request a straight line through the steps
(authenticate, in apiproxy.app, then) parse, admit, queue, route, relay,
observe."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from django.conf import settings

from apiproxy.admission import admit
from apiproxy.catalog import CatalogModel, Route
from apiproxy.errors import backend_unreachable
from apiproxy.exchange import Exchange
from apiproxy.guard import DisconnectGuard
from apiproxy.http import body_read
from apiproxy.mediafetch import media_inline
from apiproxy.modeldefaults import model_defaults_apply
from apiproxy.observer import StreamObserver
from apiproxy.parsing import (
    ENDPOINT_CAPABILITY,
    ParsedRequest,
    request_parse_off_loop,
)
from apiproxy.queueing import PositionCallback, board, slot_wait
from apiproxy.ratelimit import rate_limiter
from apiproxy.relay import (
    BackendRefused,
    relay_json,
    relay_stream,
    upstream_error,
    upstream_headers,
    upstream_open,
)
from apiproxy.routing import load_observed, picker
from apiproxy.slots import slot_key

logger = logging.getLogger(__name__)


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
    parsed = await request_parse_off_loop(endpoint, raw)
    outcome = exchange.outcome
    outcome.model, outcome.stream = parsed.model, parsed.stream
    outcome.prompt_tokens = parsed.prompt_estimate
    admitted = await admit(
        exchange,
        public_model=parsed.model,
        capability=ENDPOINT_CAPABILITY[endpoint],
        cost=parsed.prompt_estimate,
        parsed=parsed,
    )
    await media_inline(parsed, request_id=outcome.request_id)
    model_defaults_apply(parsed, admitted.model)
    if exchange.on_admitted is not None:
        await exchange.on_admitted()
    try:
        async with DisconnectGuard(
            exchange.receive, response_finished=lambda: exchange.send.finished
        ) as guard:
            await _relay_with_failover(exchange, parsed, admitted.model)
        if guard.disconnected:
            outcome.finish_reason = "client_disconnect"
    finally:
        # The admission charged the estimate; settle with the real count.
        spent = outcome.prompt_tokens + outcome.completion_tokens
        rate_limiter.charge(admitted.buckets, spent - parsed.prompt_estimate)


@asynccontextmanager
async def route_hold(
    exchange: Exchange,
    route: Route,
    public_model: str,
    on_position: PositionCallback | None = None,
) -> AsyncIterator[None]:
    """Hold a place on this route: counted in flight from the moment it is
    assigned (so requests arriving together spread over the routes while they
    wait), then a concurrency slot, both given back however the block ends."""
    picker.acquire(route)
    lease = None
    try:
        lease = await slot_wait(
            backend_id=route.backend_id,
            upstream_model=route.upstream_model,
            cap=route.max_concurrency,
            user_id=exchange.principal.user_id,
            browser=exchange.browser,
            public_model=public_model,
            on_position=on_position,
        )
        yield
    finally:
        picker.release(route)
        if lease is not None:
            await board.release(slot_key(route.backend_id, route.upstream_model), lease)


async def _relay_with_failover(
    exchange: Exchange, parsed: ParsedRequest, model: CatalogModel
) -> None:
    tried: set[int] = set()
    for _ in range(len(model.routes)):
        route = picker.choose(model, dedicated=exchange.dedicated)
        if route is None or route.backend_id in tried:
            break
        tried.add(route.backend_id)
        exchange.outcome.backend_id = route.backend_id
        try:
            async with route_hold(
                exchange, route, parsed.model, _position_reporter(exchange, parsed)
            ):
                await _relay_once(exchange, parsed, route)
            return
        except BackendRefused:
            picker.mark_refused(route)
            logger.warning(
                "backend %s refused a connection; trying another", route.backend_name
            )
    raise backend_unreachable(parsed.model)


def _position_reporter(
    exchange: Exchange, parsed: ParsedRequest
) -> PositionCallback | None:
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
    sent_at = time.monotonic()
    response = await upstream_open(
        route,
        parsed.endpoint,
        data=upstream_body(parsed, route),
        headers=upstream_headers(route, outcome.request_id, "application/json"),
        model=parsed.model,
        stream=parsed.stream,
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
    # A request that made its backend load the model timed the load.
    await load_observed(route, sent_at=sent_at, first_token_at=outcome.first_token_at)
