"""Concurrency slots per (backend, model), shared by every process.

A slot is a lease in a Redis sorted set scored by its expiry. Acquiring is one
Lua call (drop expired leases, take one if under the cap); a per-process keeper
renews the leases this process holds every third of the lease time, in one
round trip. A crashed process stops renewing, so its slots come back within
QUEUE_LEASE_SECONDS; nobody is locked out by a leaked counter.

Releasing costs no round trip of its own: the lease is removed by this
process's next acquisition call (the script drops it before counting), or
within RELEASE_FLUSH_SECONDS when no acquisition comes. Other processes may
see the slot taken for those few milliseconds longer; this process never does,
since its own next acquisition is what carries the release.

Without Redis, or while it is down, slots are counted in this process (the cap
then holds per process) and the limiter reports itself degraded.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

import redis.asyncio
import redis.exceptions
from django.conf import settings

from apiproxy.flushsoon import FlushSoon
from portal.redisconn import async_redis, sync_redis

logger = logging.getLogger(__name__)

_ACQUIRE = """
-- Leases this process released since its last call: KEYS[2..], ARGV[5..].
for i = 2, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[i + 3])
end
if ARGV[3] == '' then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[4]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
return 0
"""

_REDIS_ERRORS = (redis.exceptions.RedisError, OSError, TimeoutError)

RELEASE_FLUSH_SECONDS = 0.005
# Releases kept for a retry while Redis is unreachable; past this the oldest
# are left to expire by themselves (within QUEUE_LEASE_SECONDS).
RELEASES_KEPT_MAX = 10_000


SLOT_PREFIX = "portico:slots:"


def slot_key(backend_id: int, upstream_model: str) -> str:
    """The Redis key of a route's slot set; nothing outside this module knows
    the layout (slot_route reads it back)."""
    return f"{SLOT_PREFIX}{backend_id}:{upstream_model}"


def slot_route(key: str) -> tuple[int, str]:
    """(backend id, upstream model) of a slot key."""
    backend_id, upstream_model = key[len(SLOT_PREFIX) :].split(":", 1)
    return int(backend_id), upstream_model


@dataclass(frozen=True, slots=True)
class SlotStats:
    degraded: bool  # Redis unreachable: caps hold per process
    leases: int  # held by this process


def slots_in_use(routes: list[tuple[int, str]]) -> tuple[list[int | None], str]:
    """Leases held on each (backend id, upstream model), by every process
    (Redis), or by this process when there is no Redis; with where the
    figures come from. For pages: synchronous, one pipeline."""
    keys = [slot_key(*route) for route in routes]
    client = sync_redis()
    if client is None:
        return [slot_pool.local_held.get(key, 0) for key in keys], "this process"
    now_ms = int(time.time() * 1000)
    try:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zcount(key, now_ms, "+inf")  # leases not yet expired
            counts = [int(count) for count in pipe.execute()]
    except (redis.exceptions.RedisError, OSError):
        return [None] * len(keys), "Redis did not answer"
    return counts, "all processes"


class SlotPool:
    def __init__(self) -> None:
        self.local_held: defaultdict[str, int] = defaultdict(int)
        # lease id -> (slot key, whether it lives in Redis)
        self.leases: dict[str, tuple[str, bool]] = {}
        self.redis_down_until = 0.0
        self._keeper: asyncio.Task[None] | None = None
        self._script: tuple[int, object] | None = None
        # Released leases still in Redis: (slot key, lease id).
        self._releases: list[tuple[str, str]] = []
        self._flush_soon = FlushSoon(self.releases_flush, delay=RELEASE_FLUSH_SECONDS)
        self._retry_soon = FlushSoon(self.releases_flush, delay=RELEASE_FLUSH_SECONDS)

    def stats(self) -> SlotStats:
        return SlotStats(
            degraded=time.monotonic() < self.redis_down_until,
            leases=len(self.leases),
        )

    def _lease_ms(self) -> int:
        return int(settings.QUEUE_LEASE_SECONDS * 1000)

    def _redis(self):  # type: ignore[no-untyped-def]
        if time.monotonic() < self.redis_down_until:
            return None
        return async_redis()

    def _redis_failed(self, error: Exception) -> None:
        if time.monotonic() >= self.redis_down_until:
            logger.warning(
                "concurrency slots degraded: Redis unavailable (%s); "
                "caps hold per process",
                type(error).__name__,
            )
        self.redis_down_until = time.monotonic() + settings.LIMITER_RETRY_SECONDS

    def _releases_take(self) -> list[tuple[str, str]]:
        releases, self._releases = self._releases, []
        self._flush_soon.cancel()
        return releases

    async def _acquire_script(
        self, client: redis.asyncio.Redis, key: str, cap: int, lease_id: str
    ) -> int:
        """One call: drop the leases released since the last one, then take
        `lease_id` if `key` is under `cap` (an empty id only releases)."""
        if self._script is None or self._script[0] != id(client):
            self._script = (id(client), client.register_script(_ACQUIRE))
        releases = self._releases_take()
        keys = [key, *(release_key for release_key, _ in releases)]
        args = [int(time.time() * 1000), cap, lease_id, self._lease_ms()]
        args += [released for _, released in releases]
        try:
            return await self._script[1](keys=keys, args=args)  # type: ignore[operator]
        except _REDIS_ERRORS:
            self._releases_keep(releases)
            raise

    def _releases_keep(self, releases: list[tuple[str, str]]) -> None:
        """Releases a failed call carried are sent again once Redis answers:
        a lease left in Redis takes a slot from everyone until it expires (seen
        in the soak: every pooled connection fails once after a Redis
        restart, each dropping the releases it carried). A release sent twice
        is harmless (ZREM of a missing member)."""
        if not releases:
            return
        self._releases = (releases + self._releases)[-RELEASES_KEPT_MAX:]
        wait = max(self.redis_down_until - time.monotonic(), 0.0)
        self._retry_soon.schedule(delay=wait + RELEASE_FLUSH_SECONDS)

    async def releases_flush(self) -> None:
        """Send the releases that no acquisition has carried (and at shutdown)."""
        if not self._releases:
            return
        client = self._redis()
        if client is None:
            self._releases_keep(self._releases_take())
            return
        try:
            await self._acquire_script(client, self._releases[0][0], 0, "")
        except _REDIS_ERRORS as error:
            self._redis_failed(error)

    async def try_acquire(self, key: str, cap: int) -> str | None:
        lease_id = uuid.uuid4().hex
        client = self._redis()
        if client is not None:
            try:
                granted = await self._acquire_script(client, key, cap, lease_id)
            except _REDIS_ERRORS as error:
                self._redis_failed(error)
            else:
                if not granted:
                    return None
                self.leases[lease_id] = (key, True)
                self._keeper_ensure()
                return lease_id
        if self.local_held[key] >= cap:
            return None
        self.local_held[key] += 1
        self.leases[lease_id] = (key, False)
        return lease_id

    async def release(self, lease_id: str) -> None:
        held = self.leases.pop(lease_id, None)
        if held is None:
            return
        key, in_redis = held
        if not in_redis:
            self.local_held[key] -= 1
            return
        self._releases.append((key, lease_id))
        self._flush_soon.schedule()

    def _keeper_ensure(self) -> None:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(
                self._keep(), name="slot-lease-keeper"
            )

    async def _keep(self) -> None:
        """Renew this process's Redis leases until it holds none."""
        while True:
            await asyncio.sleep(settings.QUEUE_LEASE_SECONDS / 3)
            held = [(lid, key) for lid, (key, remote) in self.leases.items() if remote]
            if not held:
                self._keeper = None
                return
            client = self._redis()
            if client is None:
                continue
            expiry = int(time.time() * 1000) + self._lease_ms()
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for lease_id, key in held:
                        pipe.zadd(key, {lease_id: expiry}, xx=True)
                        pipe.pexpire(key, self._lease_ms())
                    await pipe.execute()
            except _REDIS_ERRORS as error:
                self._redis_failed(error)


slot_pool = SlotPool()
