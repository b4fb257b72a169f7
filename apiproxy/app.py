"""The lean ASGI app that serves the OpenAI API beside Django.

No Django middleware and no sync hand-offs on the way: the request goes
through the steps in handlers.py, and whatever happens its outcome is handed to
the meter exactly once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from apiproxy.auth import principal_authenticate
from apiproxy.cors import cors_policy, is_preflight, preflight_answer
from apiproxy.errors import ProxyError
from apiproxy.exchange import Exchange
from apiproxy.handlers import completion_handle
from apiproxy.http import (
    ClientGone,
    Headers,
    Receive,
    Send,
    TrackedSend,
    header_get,
    json_send,
)
from apiproxy.listing import model_retrieve, models_list
from apiproxy.outcome import outcome_submit
from apiproxy.parsing import ENDPOINT_CAPABILITY
from apiproxy.projectcheck import project_class_apply
from apiproxy.refusals import refusal_budget
from apiproxy.transcription import transcription_handle
from usage.outcome import RequestOutcome

logger = logging.getLogger(__name__)

# /v1/... and, for users of portals whose base URL ends in /api/, the OpenAI
# route names under /api/ (the portal's own /api/keys/ and the like stay Django's).
# /v1 in any case, so that /V1/models or a bare /v1 gets the OpenAI envelope
# (an SDK shows its message) rather than Django's HTML page.
PROXY_PATH_PATTERN = (
    r"^(?:(?i:v1)(?:/|$)|api/(?:models|chat/completions|completions|embeddings"
    r"|audio/transcriptions|responses)(?:/|$))"
)

JSON_ENDPOINTS = frozenset(ENDPOINT_CAPABILITY) - {"audio/transcriptions"}


def endpoint_of(path: str) -> str:
    """`/v1/chat/completions` and `/api/chat/completions` -> `chat/completions`.
    Only the exact `/v1/` prefix names an endpoint: `/V1/models` is unknown."""
    for prefix in ("/v1/", "/api/"):
        if path.startswith(prefix):
            return path[len(prefix) :].rstrip("/")
    return path.strip("/")


def retry_count_of(headers: list[tuple[bytes, bytes]]) -> int:
    value = header_get(headers, b"x-stainless-retry-count")
    if value is None or not value.isdigit() or len(value) > 3:
        return 0
    return int(value)


def endpoint_label(endpoint: str) -> str:
    """What logs, metrics and usage records call the endpoint. Never the
    client's own text: a path like /v1/sk-.../models must not put a key (or
    any made-up string) into a log line or a metric label."""
    if endpoint in JSON_ENDPOINTS or endpoint in ("models", "audio/transcriptions"):
        return endpoint
    if endpoint.startswith("models/"):
        return "models/retrieve"
    return "unknown"


async def _dispatch(exchange: Exchange, method: str, endpoint: str, path: str) -> None:
    if endpoint == "models" and method == "GET":
        await models_list(exchange)
    elif endpoint.startswith("models/") and method == "GET":
        await model_retrieve(exchange, endpoint[len("models/") :])
    elif endpoint in JSON_ENDPOINTS and method == "POST":
        await completion_handle(exchange, endpoint)
    elif endpoint == "audio/transcriptions" and method == "POST":
        await transcription_handle(exchange)
    elif endpoint in JSON_ENDPOINTS or endpoint == "models":
        raise ProxyError(
            405,
            f"Method {method} is not allowed on /v1/{endpoint}.",
            code="method_not_allowed",
        )
    else:
        raise ProxyError(
            404,
            f"Unknown API route: {method} {path[:200]}. Portico serves /v1/models, "
            "chat/completions, completions, embeddings, audio/transcriptions "
            "and responses.",
            code="unknown_url",
        )


Step = Callable[[TrackedSend], Awaitable[None]]


async def exchange_serve(
    send: Send,
    *,
    outcome: RequestOutcome,
    response_headers: Headers,
    step: Step,
) -> None:
    """Run `step` (authenticate and handle a request), answering any failure
    the OpenAI way, and hand the outcome to the meter exactly once.

    Shared by the API door (below) and the browser door (apiproxy.browser)."""
    tracked_send = TrackedSend(send)
    endpoint = outcome.endpoint
    try:
        await step(tracked_send)
    except ProxyError as error:
        # Raised before any answer was relayed: nothing is billed.
        if outcome.backend_id is None:
            refusal_budget.charge(outcome.user_id, error.status)
        outcome.status = error.status
        outcome.finish_reason = error.outcome
        outcome.error_code = error.code or ""
        outcome.prompt_tokens = outcome.completion_tokens = 0
        await _error_send(send, error, tracked_send.started, response_headers)
    except ClientGone:
        outcome.finish_reason = "client_disconnect"
    except Exception:
        logger.exception(
            "proxy failure on %s (request %s)", endpoint, outcome.request_id
        )
        outcome.finish_reason = "proxy_error"
        error = ProxyError(
            500,
            f"Portico failed to handle this request (request id {outcome.request_id}).",
            type="server_error",
            code="internal_error",
        )
        if not tracked_send.started:
            outcome.status = 500
        await _error_send(send, error, tracked_send.started, response_headers)
    finally:
        # Every request is counted and logged; a known user's are also metered
        # (model listings cost nothing).
        metered = outcome.user_id is not None and not endpoint.startswith("models")
        outcome_submit(outcome, meter=metered)


async def _error_send(
    send: Send, error: ProxyError, started: bool, response_headers: Headers
) -> None:
    """The error as a JSON answer, or, once a stream has begun (queue position
    lines, relayed chunks), as the final SSE event, which the SDK raises as
    APIError."""
    if started:
        await send(
            {
                "type": "http.response.body",
                "body": error.sse_event(),
                "more_body": False,
            }
        )
        return
    await json_send(
        send,
        status=error.status,
        body=error.body(),
        headers=[*response_headers, *error.headers],
    )


async def proxy_application(
    scope: dict[str, Any], receive: Receive, send: Send
) -> None:
    if scope["type"] != "http":
        return
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    cors = cors_policy()
    if cors.enabled and is_preflight(scope["method"], headers):
        await preflight_answer(send, cors, headers)
        return
    request_id = "req_" + uuid.uuid4().hex
    endpoint = endpoint_of(scope["path"])
    outcome = RequestOutcome(
        request_id=request_id,
        endpoint=endpoint_label(endpoint),
        retry_count=retry_count_of(headers),
    )
    response_headers = [
        (b"x-request-id", request_id.encode()),
        *cors.response_headers(header_get(headers, b"origin")),
    ]

    async def step(tracked_send: TrackedSend) -> None:
        client = scope.get("client") or ("", 0)
        principal = await project_class_apply(
            await principal_authenticate(headers, client=client[0])
        )
        outcome.user_id, outcome.key_id = principal.user_id, principal.key_id
        outcome.project_id = principal.project_id
        refusal_budget.check(principal.user_id)
        exchange = Exchange(
            receive=receive,
            send=tracked_send,
            headers=headers,
            principal=principal,
            outcome=outcome,
            response_headers=response_headers,
        )
        await _dispatch(exchange, scope["method"], endpoint, scope["path"])

    await exchange_serve(
        send, outcome=outcome, response_headers=response_headers, step=step
    )
