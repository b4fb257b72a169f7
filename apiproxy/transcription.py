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

from apiproxy.admission import admit
from apiproxy.errors import backend_unreachable, invalid_request
from apiproxy.exchange import Exchange
from apiproxy.handlers import route_hold
from apiproxy.http import ClientGone, body_deadline, header_get, receive_by
from apiproxy.parsing import body_too_large
from apiproxy.relay import (
    BackendRefused,
    relay_json,
    upstream_error,
    upstream_headers,
    upstream_open,
)
from apiproxy.routing import picker
from catalog.snapshot import Route

_BOUNDARY = re.compile(rb'boundary="?([^";]{1,200})"?', re.IGNORECASE)
# The model field's part: its header lines are bounded, so a match is at most
# a few KB long and each byte of the upload is scanned a bounded number of times.
_MODEL_PART = re.compile(
    rb"Content-Disposition:[ \t]{0,20}form-data;[ \t]{0,20}"
    rb'name="model"[^\r\n]{0,500}\r\n'
    rb"(?:[^\r\n]{1,500}\r\n){0,4}\r\n"
    rb"(?P<value>[^\r\n]{1,200})\r\n",
    re.IGNORECASE,
)
# How far back a new search starts: the longest possible match.
_MODEL_PART_SPAN = 4096


async def _read_until_model(
    exchange: Exchange, limit: int, deadline: float
) -> tuple[bytes, bool, re.Match[bytes]]:
    """The upload's prefix up to and including the model field, and whether
    more body follows. Each search starts where the last one could no longer
    match, so the scan is linear in the upload (not quadratic)."""
    prefix = bytearray()
    more = True
    while more:
        message = await receive_by(exchange.receive, deadline)
        if message["type"] == "http.disconnect":
            raise ClientGone
        start = max(0, len(prefix) - _MODEL_PART_SPAN)
        prefix += message.get("body", b"")
        more = message.get("more_body", False)
        if len(prefix) > limit:
            raise body_too_large(limit)
        match = _MODEL_PART.search(prefix, start)
        if match:
            return bytes(prefix), more, match
    raise invalid_request("You must provide a model parameter.", param="model")


def _content_type_checked(exchange: Exchange, limit: int) -> bytes:
    content_type = header_get(exchange.headers, b"content-type") or b""
    boundary = _BOUNDARY.search(content_type)
    if not content_type.lower().startswith(b"multipart/form-data") or not boundary:
        raise invalid_request(
            "Send the audio as multipart/form-data with 'file' and 'model' fields.",
            param="file",
        )
    declared = header_get(exchange.headers, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)
    return content_type


async def _upload(
    exchange: Exchange, prefix: bytes, more: bool, limit: int, deadline: float
) -> AsyncIterator[bytes]:
    """The prefix already read, then the rest of the upload as it arrives."""
    received = len(prefix)
    yield prefix
    while more:
        message = await receive_by(exchange.receive, deadline)
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise body_too_large(limit)
        more = message.get("more_body", False)
        if chunk:
            yield chunk


async def transcription_handle(exchange: Exchange) -> None:
    limit = settings.MAX_REQUEST_BYTES
    content_type = _content_type_checked(exchange, limit)
    deadline = body_deadline()
    prefix, more, match = await _read_until_model(exchange, limit, deadline)
    public_model = match.group("value").decode("utf-8", "replace").strip()
    exchange.outcome.model = public_model
    admitted = await admit(
        exchange, public_model=public_model, capability="transcription", cost=1
    )
    route = picker.choose(admitted.model, dedicated=exchange.dedicated)
    if route is None:
        raise backend_unreachable(public_model)
    if route.upstream_model != public_model:
        start, end = match.span("value")
        prefix = prefix[:start] + route.upstream_model.encode() + prefix[end:]
    exchange.outcome.backend_id = route.backend_id
    async with route_hold(exchange, route, public_model):
        await _relay_upload(
            exchange,
            route,
            public_model,
            data=_upload(exchange, prefix, more, limit, deadline),
            content_type=content_type.decode("latin-1"),
        )


async def _relay_upload(
    exchange: Exchange,
    route: Route,
    public_model: str,
    *,
    data: AsyncIterator[bytes],
    content_type: str,
) -> None:
    try:
        response = await upstream_open(
            route,
            "audio/transcriptions",
            data=data,
            headers=upstream_headers(route, exchange.outcome.request_id, content_type),
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
            outcome=exchange.outcome,
            response_headers=exchange.response_headers,
            public_model=public_model,
            upstream_model=route.upstream_model,
        )
    finally:
        response.release()
