"""Step 6, relay: one shared aiohttp session per process, bytes passed on as
they arrive.

Streams go through the observer, which forwards whole SSE events unchanged. A
backend that dies or stalls mid-stream ends the stream with an OpenAI error
event (the SDK raises APIError instead of hanging). The upstream response is
always released in `finally`, so a cancelled client cancels the backend request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from django.conf import settings

from apiproxy.catalog import Route
from apiproxy.errors import (
    ProxyError,
    backend_timeout,
    backend_unreachable,
    stream_interrupted,
    upstream_error_translate,
)
from apiproxy.observer import StreamObserver
from usage.outcome import RequestOutcome

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]

# Error bodies from backends are read for translation only, never in full.
ERROR_BODY_LIMIT = 64 * 1024

_session: aiohttp.ClientSession | None = None
_session_loop: asyncio.AbstractEventLoop | None = None


def session_get() -> aiohttp.ClientSession:
    """The process's shared client session, made on first use in this loop
    (a session belongs to the loop that made it; test servers each run one)."""
    global _session, _session_loop
    loop = asyncio.get_running_loop()
    if _session is None or _session.closed or _session_loop is not loop:
        _session_loop = loop
        _session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
    return _session


async def session_close() -> None:
    global _session
    if _session is not None and not _session.closed:
        await _session.close()
    _session = None


class BackendRefused(Exception):
    """The backend did not accept the connection: another route may be tried."""


def upstream_headers(
    route: Route, request_id: str, content_type: str
) -> dict[str, str]:
    headers = {"content-type": content_type, "x-request-id": request_id}
    if route.api_key:
        headers["authorization"] = f"Bearer {route.api_key}"
    return headers


async def upstream_open(
    route: Route, path: str, *, data: Any, headers: dict[str, str], model: str
) -> aiohttp.ClientResponse:
    url = f"{route.base_url}/{path}"
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=settings.BACKEND_CONNECT_TIMEOUT,
        sock_read=settings.BACKEND_READ_TIMEOUT,
    )
    try:
        return await session_get().post(
            url, data=data, headers=headers, timeout=timeout
        )
    except aiohttp.ClientConnectorError:
        raise BackendRefused from None
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise backend_timeout(model) from None
    except aiohttp.ClientError:
        raise backend_unreachable(model) from None


async def upstream_error(response: aiohttp.ClientResponse, model: str) -> ProxyError:
    try:
        body = await response.content.read(ERROR_BODY_LIMIT)
    except (aiohttp.ClientError, TimeoutError):
        body = b""
    error = upstream_error_translate(response.status, body, model=model)
    retry_after = response.headers.get("retry-after", "")
    if error.status == 503 and retry_after.isdigit():
        error.headers = [(b"retry-after", retry_after.encode())]
    return error


def _model_rewriter(upstream: str, public: str) -> Callable[[bytes], bytes]:
    """Clients see the public model id, even where the backend names it else."""
    if upstream == public:
        return lambda data: data
    old = b'"model":"' + json.dumps(upstream)[1:-1].encode() + b'"'
    new = b'"model":"' + json.dumps(public)[1:-1].encode() + b'"'
    return lambda data: data.replace(old, new)


async def relay_json(
    send: Send,
    response: aiohttp.ClientResponse,
    *,
    outcome: RequestOutcome,
    response_headers: list[tuple[bytes, bytes]],
    public_model: str,
    upstream_model: str,
) -> None:
    """A non-streamed answer: read it, note its usage, pass the bytes on."""
    try:
        body = await response.read()
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise backend_timeout(public_model) from None
    except aiohttp.ClientError:
        raise backend_unreachable(public_model) from None
    outcome.first_token_at = time.monotonic()
    usage_read(body, outcome)
    body = _model_rewriter(upstream_model, public_model)(body)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (
                    b"content-type",
                    response.headers.get("content-type", "application/json").encode(),
                ),
                (b"content-length", str(len(body)).encode()),
                *response_headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    outcome.status = 200


def usage_read(body: bytes, outcome: RequestOutcome) -> None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return
    if not isinstance(parsed, dict):
        return
    usage = parsed.get("usage")
    if isinstance(usage, dict):
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
        if isinstance(prompt, int):
            outcome.prompt_tokens = prompt
        if isinstance(completion, int):
            outcome.completion_tokens = completion
        outcome.usage_source = "reported"
    else:
        # No usage from the backend: bill an estimate of the answer (four
        # characters a token, like the prompt estimate), never zero.
        chars = _answer_chars(parsed)
        outcome.completion_tokens = chars // 4 + 1 if chars else 0
    choices = parsed.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        if isinstance(reason, str):
            outcome.finish_reason = reason
    if not outcome.finish_reason:
        outcome.finish_reason = "stop"


_ANSWER_KEYS = frozenset({"content", "text", "arguments", "refusal"})


def _answer_chars(value: Any, depth: int = 0) -> int:
    """Characters of generated text in an answer without usage."""
    if depth > 8:
        return 0
    if isinstance(value, dict):
        return sum(
            len(item)
            if key in _ANSWER_KEYS and isinstance(item, str)
            else _answer_chars(item, depth + 1)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return sum(_answer_chars(item, depth + 1) for item in value)
    return 0


async def relay_stream(
    send: Send,
    response: aiohttp.ClientResponse,
    *,
    outcome: RequestOutcome,
    observer: StreamObserver,
    upstream_model: str,
) -> None:
    """Pass SSE events on as the backend produces them (the caller has sent
    the response start)."""
    rewrite = _model_rewriter(upstream_model, observer.model)
    try:
        try:
            async for data in response.content.iter_any():
                out = observer.feed(data)
                if out:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": rewrite(out),
                            "more_body": True,
                        }
                    )
        finally:
            outcome.first_token_at = observer.first_token_at
            outcome.completion_tokens = observer.completion_tokens_final()
            if observer.prompt_tokens is not None:
                outcome.prompt_tokens = observer.prompt_tokens
            outcome.usage_source = observer.usage_source
    except (TimeoutError, aiohttp.ServerTimeoutError):
        await _stream_fail(send, outcome, backend_timeout(observer.model))
        return
    except aiohttp.ClientError:
        await _stream_fail(send, outcome, stream_interrupted(observer.model))
        return
    if not observer.done:
        # The backend closed the stream without [DONE]: it died mid-answer.
        await _stream_fail(send, outcome, stream_interrupted(observer.model))
        return
    if observer.failed:
        # The backend reported an error in the stream (relayed as it came).
        outcome.finish_reason, outcome.status = "backend_error", 502
    else:
        outcome.finish_reason = observer.finish_reason or "stop"
    await send(
        {"type": "http.response.body", "body": observer.flush(), "more_body": False}
    )


async def _stream_fail(send: Send, outcome: RequestOutcome, error: ProxyError) -> None:
    outcome.finish_reason = "backend_error"
    outcome.status = error.status
    logger.warning(
        "stream %s ended by backend failure: %s", outcome.request_id, error.code
    )
    await send(
        {"type": "http.response.body", "body": error.sse_event(), "more_body": False}
    )
