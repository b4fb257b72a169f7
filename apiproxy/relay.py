"""Step 6, relay: one shared aiohttp session per process, bytes passed on as
they arrive.

Streams go through the observer, which forwards whole SSE events unchanged. A
backend that dies or stalls mid-stream ends the stream with an OpenAI error
event (the SDK raises APIError instead of hanging). The upstream response is
always released in `finally`, so a cancelled client cancels the backend request.

A backend is not trusted either: redirects are not followed, an answer of the
wrong content type is not relayed, a refusal of Portico's own key is not passed
on as the client's fault, and usage counts are clamped before they are billed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from django.conf import settings

from apiproxy.catalog import Route, catalog
from apiproxy.errors import (
    ProxyError,
    backend_answer_unexpected,
    backend_credentials_refused,
    backend_redirected,
    backend_timeout,
    backend_unreachable,
    stream_interrupted,
    upstream_error_translate,
)
from apiproxy.http import TrackedSend
from apiproxy.observer import TOKENS_PER_REQUEST_MAX, StreamObserver
from apiproxy.readdeadline import ReadDeadline
from apiproxy.usageread import usage_read
from usage.outcome import RequestOutcome

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]

# Error bodies from backends are read for translation only, never in full.
ERROR_BODY_LIMIT = 64 * 1024

# What a backend may answer with. Transcripts come as JSON or, asked for
# text/srt/vtt, as text; everything else as JSON, or SSE for a stream.
_JSON = frozenset({"application/json"})
_SSE = frozenset({"text/event-stream"})
_TRANSCRIPT = _JSON | _SSE | {"text/plain", "text/vtt", "application/x-subrip"}
# Statuses that speak of Portico's credentials at the backend, not the client's.
_CREDENTIALS_REFUSED = frozenset({401, 403, 407})

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
    route: Route,
    path: str,
    *,
    data: Any,
    headers: dict[str, str],
    model: str,
    stream: bool | None = None,
) -> aiohttp.ClientResponse:
    """The backend's answer, once its status line is in. A redirect or a 2xx
    of a kind Portico cannot relay raises (a 502) before anything is sent to
    the client; `stream` (when the caller knows it) narrows the kind to SSE or
    JSON. Error statuses are left to `upstream_error`."""
    url = f"{route.base_url}/{path}"
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=settings.BACKEND_CONNECT_TIMEOUT,
        sock_read=settings.BACKEND_READ_TIMEOUT,
    )
    try:
        # Never follow a redirect: it would carry the backend's key and the
        # user's prompt to wherever the backend points.
        response = await session_get().post(
            url, data=data, headers=headers, timeout=timeout, allow_redirects=False
        )
    except aiohttp.ClientConnectorError:
        raise BackendRefused from None
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise backend_timeout(model) from None
    except aiohttp.ClientError:
        raise backend_unreachable(model) from None
    try:
        if 300 <= response.status < 400:
            logger.warning(
                "backend %s answered %s with a redirect (HTTP %s); not followed",
                route.backend_name,
                path,
                response.status,
            )
            raise backend_redirected(model, response.status)
        if response.status < 300:
            answer_type_check(response, path=path, stream=stream, model=model)
    except ProxyError:
        response.close()
        raise
    return response


def answer_type_check(
    response: aiohttp.ClientResponse, *, path: str, stream: bool | None, model: str
) -> None:
    """Refuse a 2xx whose Content-Type is not what the request calls for."""
    if path.endswith("audio/transcriptions"):
        wanted, words = _TRANSCRIPT, "JSON or a transcript"
    elif stream is None:
        wanted, words = _JSON | _SSE, "JSON or an event stream"
    elif stream:
        wanted, words = _SSE, "an event stream (text/event-stream)"
    else:
        wanted, words = _JSON, "JSON (application/json)"
    if response.content_type not in wanted:
        logger.warning(
            "backend answered %s with content type %r; not relayed",
            path,
            response.content_type[:80],
        )
        raise backend_answer_unexpected(model, got=response.content_type, wanted=words)


async def upstream_error(response: aiohttp.ClientResponse, model: str) -> ProxyError:
    if response.status in _CREDENTIALS_REFUSED:
        # Its body is not read: what a backend says about keys is for staff.
        logger.warning(
            "backend at %s refused Portico's credentials (HTTP %s)",
            response.url.origin(),
            response.status,
        )
        return backend_credentials_refused(model, response.status)
    try:
        body = await response.content.read(ERROR_BODY_LIMIT)
    except (aiohttp.ClientError, TimeoutError):
        body = b""
    error = upstream_error_translate(
        response.status,
        body,
        model=model,
        endpoint=_endpoint_of(response.url.path),
        window=_catalog_window(model),
    )
    retry_after = response.headers.get("retry-after", "")
    if error.status == 503 and retry_after.isdigit():
        error.headers = [(b"retry-after", retry_after.encode())]
    return error


def _model_rewriter(upstream: str, public: str) -> Callable[[bytes], bytes]:
    """Clients see the public model id, even where the backend names it else."""
    if upstream == public:
        return lambda data: data
    # Compact JSON (vLLM, llama.cpp, Ollama) or Python's default spacing.
    pattern = re.compile(
        rb'"model"(\s*:\s*)"' + re.escape(json.dumps(upstream)[1:-1].encode()) + rb'"'
    )
    value = json.dumps(public)[1:-1].encode()
    needle = json.dumps(upstream)[1:-1].encode()

    def rewrite(data: bytes) -> bytes:
        if needle not in data:  # a substring screen before the regex
            return data
        return pattern.sub(lambda m: b'"model"' + m[1] + b'"' + value + b'"', data)

    return rewrite


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
    # The path tells a transcript (text allowed) from a JSON endpoint's answer.
    answer_type_check(
        response, path=response.url.path, stream=False, model=public_model
    )
    try:
        body = await response.read()
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise backend_timeout(public_model) from None
    except aiohttp.ClientError:
        raise backend_unreachable(public_model) from None
    outcome.first_token_at = time.monotonic()
    usage_read(body, outcome, window=_context_window(public_model))
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


def _context_window(public_model: str) -> int:
    return _catalog_window(public_model) or TOKENS_PER_REQUEST_MAX


def _catalog_window(public_model: str) -> int | None:
    model = catalog.value.get(public_model)
    return model.context_window if model is not None else None


def _endpoint_of(path: str) -> str:
    """The OpenAI endpoint a backend URL's path ends in (for error wording)."""
    for endpoint in ("chat/completions", "completions", "responses", "embeddings"):
        if path.endswith("/" + endpoint):
            return endpoint
    return ""


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
    answer_type_check(
        response, path=response.url.path, stream=True, model=observer.model
    )
    rewrite = _model_rewriter(upstream_model, observer.model)
    # A stream is always a generation, so no count can exceed the window.
    window = _context_window(observer.model)
    # The chunks between the first and the last change nothing TrackedSend
    # tracks (the response has started and goes on), so they go to the
    # server's send directly: one call less per token.
    send_chunk = send.send if isinstance(send, TrackedSend) else send
    feed = observer.feed
    deadline = ReadDeadline(response, settings.BACKEND_READ_TIMEOUT)
    now = asyncio.get_running_loop().time
    try:
        try:
            async for data in response.content.iter_any():
                deadline.last = now()
                out = feed(data)
                if observer.done:
                    await _stream_last(send, outcome, observer, rewrite(out))
                    return
                if out:
                    deadline.paused = True
                    await send_chunk(
                        {
                            "type": "http.response.body",
                            "body": rewrite(out),
                            "more_body": True,
                        }
                    )
                    deadline.paused = False
                    deadline.last = now()
        finally:
            deadline.cancel()
            _stream_counts_take(outcome, observer, window=window)
    except (TimeoutError, aiohttp.ServerTimeoutError):
        await _stream_fail(send, outcome, backend_timeout(observer.model))
        return
    except aiohttp.ClientError:
        await _stream_fail(send, outcome, stream_interrupted(observer.model))
        return
    # The backend closed the stream before its end ([DONE], or a Responses
    # stream's final event): it died mid-answer.
    await _stream_fail(send, outcome, stream_interrupted(observer.model))


async def _stream_last(
    send: Send, outcome: RequestOutcome, observer: StreamObserver, body: bytes
) -> None:
    """[DONE] goes out as the response's last message: a client that hangs up
    once it has read it has not interrupted anything (whatever the backend
    still sends is dropped)."""
    _stream_end(outcome, observer)
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _stream_counts_take(
    outcome: RequestOutcome, observer: StreamObserver, *, window: int
) -> None:
    """What the stream said it cost, however it ended; no count above the
    model's window (a stream is always a generation)."""
    outcome.first_token_at = observer.first_token_at
    outcome.completion_tokens = min(observer.completion_tokens_final(), window)
    outcome.reasoning_tokens = min(observer.reasoning_tokens_final(), window)
    if observer.prompt_tokens is not None:
        outcome.prompt_tokens = min(observer.prompt_tokens, window)
    outcome.usage_source = observer.usage_source


def _stream_end(outcome: RequestOutcome, observer: StreamObserver) -> None:
    if observer.failed:
        # The backend reported an error in the stream (relayed as it came).
        outcome.finish_reason, outcome.status = "backend_error", 502
    else:
        outcome.finish_reason = observer.finish_reason or "stop"


async def _stream_fail(send: Send, outcome: RequestOutcome, error: ProxyError) -> None:
    outcome.finish_reason = "backend_error"
    outcome.status = error.status
    logger.warning(
        "stream %s ended by backend failure: %s", outcome.request_id, error.code
    )
    await send(
        {"type": "http.response.body", "body": error.sse_event(), "more_body": False}
    )
