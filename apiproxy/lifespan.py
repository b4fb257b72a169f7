"""ASGI lifespan for the whole process: drain the meter and close the shared
backend session on shutdown (uvicorn and granian send lifespan events).

On SIGTERM the server stops accepting and gives running requests its grace
(uvicorn's --timeout-graceful-shutdown, SHUTDOWN_GRACE); those still running
then are cancelled, and the server starts the lifespan shutdown at once,
without waiting for them. Their outcomes are handed to the meter in their
`finally` clauses, so the shutdown first lets those tasks end (they are
tracked by `requests_tracked`), then drains.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from accounts.keycache import key_cache
from apiproxy.http import Receive, Send
from apiproxy.looplag import loop_lag
from apiproxy.ratelimit import rate_limiter
from apiproxy.relay import session_close
from apiproxy.slots import slot_pool
from usage.buffer import usage_buffer

logger = logging.getLogger(__name__)

ASGIApp = Any
# Cancelled requests only run their clean-up (a Redis call or two, bounded by
# short timeouts) before they end.
SETTLE_SECONDS = 5.0

_requests: set[asyncio.Task[Any]] = set()


def requests_tracked(app: ASGIApp) -> ASGIApp:
    """Wrap the HTTP application so that shutdown knows the request tasks."""

    async def tracked(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if task is not None:
            _requests.add(task)
        try:
            await app(scope, receive, send)
        finally:
            _requests.discard(task)  # type: ignore[arg-type]

    return tracked


async def requests_settle(*, within: float = SETTLE_SECONDS) -> None:
    """Wait until the requests of this loop have ended (cancelled or not)."""
    loop = asyncio.get_running_loop()
    running = {t for t in _requests if not t.done() and t.get_loop() is loop}
    if running:
        _, late = await asyncio.wait(running, timeout=within)
        if late:
            logger.error("shutdown: %d request(s) did not end in time", len(late))


async def lifespan_application(
    scope: dict[str, Any], receive: Receive, send: Send
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # What import and set-up made (Django, the apps, ~120k objects)
            # lives as long as the process: keep it out of the collector's
            # full passes, which under load walked it all every few seconds
            # (measured: about 5 % of a busy worker's CPU).
            gc.freeze()
            loop_lag.start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await loop_lag.stop()
            await requests_settle()
            try:
                await rate_limiter.charges_flush()
                await slot_pool.releases_flush()
            except Exception:
                logger.exception(
                    "shutdown flush of rate-limit charges or slot releases failed"
                )
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
