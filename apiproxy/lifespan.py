"""ASGI lifespan for the whole process: drain the meter and close the shared
backend session on shutdown (uvicorn and granian send lifespan events)."""

from __future__ import annotations

import logging
from typing import Any

from apiproxy.http import Receive, Send
from apiproxy.relay import session_close

logger = logging.getLogger(__name__)


async def lifespan_application(
    scope: dict[str, Any], receive: Receive, send: Send
) -> None:
    from accounts.keycache import key_cache
    from usage.buffer import usage_buffer

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await usage_buffer.drain()
            except Exception:
                logger.exception("shutdown drain of the usage buffer failed")
            try:
                await key_cache.drain()
            except Exception:
                logger.exception("shutdown write of keys' last use failed")
            finally:
                await session_close()
            await send({"type": "lifespan.shutdown.complete"})
            return
