"""Small ASGI helpers for the proxy: headers, bounded body reads, JSON replies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from apiproxy.errors import ProxyError
from apiproxy.parsing import body_too_large

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


class TrackedSend:
    """The ASGI send, remembering whether the response has started and ended:
    an error after the start must end the stream instead, and a client that
    leaves after the end has not interrupted anything."""

    __slots__ = ("finished", "send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False
        self.finished = False

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        elif not message.get("more_body", False):
            self.finished = True
        await self.send(message)


def header_get(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def body_deadline() -> float:
    """The event-loop time by which a request body must have arrived."""
    return asyncio.get_running_loop().time() + settings.REQUEST_BODY_TIMEOUT


def body_timeout() -> ProxyError:
    return ProxyError(
        408,
        f"The request body did not arrive within {settings.REQUEST_BODY_TIMEOUT:g} "
        "seconds.",
        code="request_timeout",
    )


async def receive_by(receive: Receive, deadline: float) -> dict[str, Any]:
    """The client's next message, or 408 once the body's deadline has passed:
    a client dripping bytes cannot hold a request (and its memory) open."""
    try:
        async with asyncio.timeout_at(deadline):
            return await receive()
    except TimeoutError:
        raise body_timeout() from None


async def body_read(receive: Receive, headers: Headers, *, limit: int) -> bytes:
    """The whole request body, refusing early (413) when it is over `limit` and
    with 408 when it has not arrived within REQUEST_BODY_TIMEOUT."""
    deadline = body_deadline()
    declared = header_get(headers, b"content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise body_too_large(limit)
        except ValueError:
            raise ProxyError(400, "Invalid Content-Length header.") from None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive_by(receive, deadline)
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise body_too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def json_send(
    send: Send, *, status: int, body: bytes, headers: Headers | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
