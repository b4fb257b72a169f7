"""The one place Redis clients are made.

`async_redis()`: one asyncio client per event loop, for the proxy's hot path.
An asyncio client belongs to the loop that made it, and test servers and
worker processes each run their own loop, so the client is looked up by loop.
Timeouts are short on purpose (REDIS_HOT_PATH_TIMEOUT): a Redis outage must
degrade a request by milliseconds (the caller falls back), never stall it.

`sync_redis()`: one thread-safe client per process, for pages, commands and
Celery tasks, with REDIS_SYNC_TIMEOUT.
"""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio
from django.conf import settings

_clients: dict[
    tuple[int, str], tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis]
] = {}


def async_redis() -> redis.asyncio.Redis | None:
    """The shared client for this loop, or None when Redis is not configured."""
    url = settings.REDIS_URL
    if not url:
        return None
    loop = asyncio.get_running_loop()
    key = (id(loop), url)
    held = _clients.get(key)
    if held is None or held[0] is not loop:
        # Drop clients of loops that are gone (test servers come and go).
        for stale in [k for k, (other, _) in _clients.items() if other.is_closed()]:
            del _clients[stale]
        # A blocking pool: under a burst, requests wait briefly for a
        # connection instead of failing over to the degraded local limiter.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=512,
            timeout=settings.REDIS_HOT_PATH_TIMEOUT,
            socket_timeout=settings.REDIS_HOT_PATH_TIMEOUT,
            socket_connect_timeout=settings.REDIS_HOT_PATH_TIMEOUT,
        )
        client = redis.asyncio.Redis(connection_pool=pool)
        _clients[key] = (loop, client)
        return client
    return held[1]


_sync_clients: dict[str, redis.Redis] = {}


def sync_redis() -> redis.Redis | None:
    """The process's shared blocking client, or None when Redis is not
    configured. Its pool is thread-safe: views and tasks share it."""
    url = settings.REDIS_URL
    if not url:
        return None
    client = _sync_clients.get(url)
    if client is None:
        timeout = settings.REDIS_SYNC_TIMEOUT
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        _sync_clients[url] = client
    return client
