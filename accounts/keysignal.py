"""The revocation signal: one value every process watches.

Services call `apikey_generation_bump()` whenever a key may no longer be used
(revoke, roll, user deactivation, admin edits of users): it sets a fresh
random token, in Redis under `GENERATION_KEY` (once the transaction commits),
or without REDIS_URL in the one `KeyGeneration` row (inside the transaction).
accounts.keycache reads it at most once a second per process and drops its
cache when it changed, so a revocation reaches every process within about a
second either way. A random token rather than an INCRed counter, so that a
Redis restart (the value lost) followed by the same number of bumps can never
look like "no change".
"""

from __future__ import annotations

import logging
import secrets
import threading

import redis
from django.db import transaction

from accounts.models import KeyGeneration
from portal.dbthread import in_db_thread
from portal.redisconn import async_redis, sync_redis

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


def _signal_everywhere() -> None:
    local_generation.bump()
    client = sync_redis()
    if client is None:
        return
    try:
        client.set(GENERATION_KEY, secrets.token_hex(16))
    except redis.RedisError:
        logger.exception(
            "Could not signal an API key change through Redis; other processes "
            "will notice within API_KEY_CACHE_SECONDS"
        )


def apikey_generation_bump() -> None:
    """Make every process forget what it cached about keys.

    This process forgets at once. The Redis SET waits for the surrounding
    transaction to commit: were it sent before, another process could re-read
    the old row in between and cache it again. Without Redis the row is
    written inside the transaction, so it becomes visible with the revocation.
    """
    local_generation.bump()
    if sync_redis() is None:
        KeyGeneration.objects.update_or_create(
            pk=1, defaults={"token": secrets.token_hex(16)}
        )
        return
    transaction.on_commit(_signal_everywhere)


async def remote_generation_read() -> bytes | None:
    """The token every process shares: from Redis through the hot path's
    client, or without Redis from the database in a worker thread."""
    client = async_redis()
    if client is None:
        return await in_db_thread(_database_token)
    value: bytes | None = await client.get(GENERATION_KEY)
    return value


def _database_token() -> bytes | None:
    token = KeyGeneration.objects.filter(pk=1).values_list("token", flat=True).first()
    return None if token is None else token.encode()
