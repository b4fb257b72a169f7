"""POST /v1/audio/transcriptions: multipart, streamed to the backend.

The proxy reads the upload only until it has seen the `model` field (the
OpenAI SDK and curl send form fields before the file), admits and routes on it,
then streams the rest of the upload to the backend as it arrives, counting
bytes against MAX_REQUEST_BYTES. The model field's value is rewritten to the
backend's own model name where the two differ.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from django.conf import settings

from apiproxy.admission import model_admit, rate_admit, service_class_resolve
from apiproxy.errors import backend_unreachable, invalid_request
from apiproxy.exchange import Exchange
from apiproxy.handlers import route_hold
from apiproxy.http import ClientGone, header_get
from apiproxy.parsing import body_too_large
from apiproxy.relay import (
    BackendRefused,
    relay_json,
    upstream_error,
    upstream_headers,
    upstream_open,
)
from apiproxy.routing import picker
from usage.quota import quota_admit

_BOUNDARY = re.compile(rb'boundary="?([^";]{1,200})"?', re.IGNORECASE)
_MODEL_PART = re.compile(
    rb'Content-Disposition:\s*form-data;\s*name="model"[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n'
    rb"(?P<value>[^\r\n]{1,200})\r\n",
    re.IGNORECASE,
)


async def _read_until_model(
    exchange: Exchange, limit: int
) -> tuple[bytes, bool, re.Match[bytes]]:
    """The upload's prefix up to and including the model field, and whether
    more body follows."""
    prefix = b""
    more = True
    while more:
        message = await exchange.receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        prefix += message.get("body", b"")
        more = message.get("more_body", False)
        if len(prefix) > limit:
            raise body_too_large(limit)
        match = _MODEL_PART.search(prefix)
        if match:
            return prefix, more, match
    raise invalid_request("You must provide a model parameter.", param="model")


async def transcription_handle(exchange: Exchange) -> None:
    content_type = header_get(exchange.headers, b"content-type") or b""
    boundary = _BOUNDARY.search(content_type)
    if not content_type.lower().startswith(b"multipart/form-data") or not boundary:
        raise invalid_request(
            "Send the audio as multipart/form-data with 'file' and 'model' fields.",
            param="file",
        )
    limit = settings.MAX_REQUEST_BYTES
    declared = header_get(exchange.headers, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)
    prefix, more, match = await _read_until_model(exchange, limit)
    public_model = match.group("value").decode("utf-8", "replace").strip()
    outcome = exchange.outcome
    outcome.model = public_model
    await service_class_resolve(exchange)
    model = await model_admit(
        exchange.principal, public_model, "transcription", dedicated=exchange.dedicated
    )
    quota = await quota_admit(
        user_id=exchange.principal.user_id,
        group_ids=exchange.principal.group_ids,
        model_weight=model.quota_weight,
    )
    exchange.response_headers.extend(quota.headers())
    await rate_admit(exchange, cost=1)
    route = picker.choose(model, dedicated=exchange.dedicated)
    if route is None:
        raise backend_unreachable(public_model)
    if route.upstream_model != public_model:
        start, end = match.span("value")
        prefix = prefix[:start] + route.upstream_model.encode() + prefix[end:]

    received = len(prefix)

    async def upload() -> AsyncIterator[bytes]:
        nonlocal received
        yield prefix
        remaining = more
        while remaining:
            message = await exchange.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise body_too_large(limit)
            remaining = message.get("more_body", False)
            if chunk:
                yield chunk

    outcome.backend_id = route.backend_id
    async with route_hold(exchange, route, public_model):
        try:
            response = await upstream_open(
                route,
                "audio/transcriptions",
                data=upload(),
                headers=upstream_headers(
                    route, outcome.request_id, content_type.decode("latin-1")
                ),
                model=public_model,
            )
        except BackendRefused:
            picker.mark_refused(route)
            raise backend_unreachable(public_model) from None
        try:
            if response.status >= 400:
                raise await upstream_error(response, public_model)
            await relay_json(
                exchange.send,
                response,
                outcome=outcome,
                response_headers=exchange.response_headers,
                public_model=public_model,
                upstream_model=route.upstream_model,
            )
        finally:
            response.release()
