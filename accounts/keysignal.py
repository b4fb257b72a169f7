"""The revocation signal: one Redis value every process watches.

Services call `apikey_generation_bump()` whenever a key may no longer be used
(revoke, roll, user deactivation, admin edits of users): it SETs the key
`GENERATION_KEY` to a fresh random token. accounts.keycache GETs it at most
once a second per process and drops its cache when it changed. A random token
rather than an INCRed counter, so that a Redis restart (the value lost) followed
by the same number of bumps can never look like "no change". Without REDIS_URL
only this process's own counter exists, which is all a single development
process needs.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading

import redis
import redis.asyncio
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

GENERATION_KEY = "portico:apikeys:generation"


class LocalGeneration:
    """This process's own counter: bumped at once, so that the process that
    revoked a key never serves it again, not even between two polls."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def bump(self) -> None:
        with self._lock:
            self.value += 1


local_generation = LocalGeneration()
_sync_clients: dict[str, redis.Redis] = {}


def _redis_sync(url: str) -> redis.Redis:
    client = _sync_clients.get(url)
    if client is None:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        _sync_clients[url] = client
    return client


def _signal_everywhere() -> None:
    local_generation.bump()
    url = settings.REDIS_URL
    if not url:
        return
    try:
        _redis_sync(url).set(GENERATION_KEY, secrets.token_hex(16))
    except redis.RedisError:
        logger.exception(
            "Could not signal an API key change through Redis; other processes "
            "will notice within API_KEY_CACHE_SECONDS"
        )


def apikey_generation_bump() -> None:
    """Make every process forget what it cached about keys.

    This process forgets at once. The Redis SET waits for the surrounding
    transaction to commit: were it sent before, another process could re-read
    the old row in between and cache it again.
    """
    local_generation.bump()
    transaction.on_commit(_signal_everywhere)


class RemoteGeneration:
    """Reads the Redis token with an asyncio client made per event loop."""

    def __init__(self) -> None:
        # (loop, url, client): an asyncio client belongs to the loop it was made
        # on; holding the loop also keeps its id from being reused.
        self._current: (
            tuple[asyncio.AbstractEventLoop, str, redis.asyncio.Redis] | None
        ) = None

    async def read(self) -> bytes | None:
        url = settings.REDIS_URL
        if not url:
            return None
        loop = asyncio.get_running_loop()
        if self._current is None or self._current[:2] != (loop, url):
            client = redis.asyncio.Redis.from_url(
                url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            self._current = (loop, url, client)
        value: bytes | None = await self._current[2].get(GENERATION_KEY)
        return value
