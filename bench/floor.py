"""The floor: the least an ASGI relay on the same stack can cost.

A bare ASGI app, no Django, no key check, no limits, no observer, no meter:
it passes each request to the fake backend with one shared aiohttp session
and the answer back chunk by chunk, as Portico's relay does. run.py serves it
under uvicorn like Portico (`--servers ...,floor`), so that the difference
between the two is what Portico's own steps cost, and the floor itself is
what uvicorn + aiohttp cost on this machine.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

_session: aiohttp.ClientSession | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _session
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        if _session is not None:
            await _session.close()
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if _session is None:
        _session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
        )
    url = os.environ["BENCH_BACKEND_URL"] + scope["path"]
    async with _session.request(
        scope["method"],
        url,
        data=body or None,
        headers={"content-type": "application/json"},
    ) as response:
        streamed = response.content_type == "text/event-stream"
        headers = [(b"content-type", response.content_type.encode())]
        if streamed:
            await send(
                {"type": "http.response.start", "status": 200, "headers": headers}
            )
            async for data in response.content.iter_any():
                await send(
                    {"type": "http.response.body", "body": data, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
            return
        data = await response.read()
        headers.append((b"content-length", str(len(data)).encode()))
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": data})
