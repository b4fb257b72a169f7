"""A deadline on request bodies for the Django door.

Django's ASGI handler reads a whole body before a view runs, with no time
limit of its own: a client dripping one byte a minute would hold a worker's
memory and a connection for as long as it liked. This wrapper gives the body
REQUEST_BODY_TIMEOUT seconds; past it the client gets 408 and Django is told
the client left (it then drops the request without answering). The proxy's
two doors apply the same deadline themselves (apiproxy.http).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

_TIMEOUT_BODY = b"The request body did not arrive in time."


def body_deadline(app: ASGIApp) -> ASGIApp:
    async def guarded(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + settings.REQUEST_BODY_TIMEOUT
        body_done = False

        async def receive_by() -> dict[str, Any]:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                body_done = True
                await _refuse(send)
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body"):
                body_done = True
            return message

        await app(scope, receive_by, send)

    return guarded


async def _refuse(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(_TIMEOUT_BODY)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _TIMEOUT_BODY})
