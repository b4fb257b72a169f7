"""Slot releases cost no round trip of their own: the next acquisition of the
process carries them, or they go alone within RELEASE_FLUSH_SECONDS, and at
shutdown. Real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis
from django.conf import settings

from apiproxy.slots import RELEASE_FLUSH_SECONDS, SlotPool
from portal.redisconn import async_redis
from tests.redisprobe import evalsha_calls


async def test_a_release_rides_on_the_next_acquisition(sync_redis: redis.Redis) -> None:
    pool = SlotPool()
    key = f"portico:slots:test:{uuid.uuid4().hex}"
    first = await pool.try_acquire(key, 1)
    assert first is not None
    assert await pool.try_acquire(key, 1) is None, "the cap is 1"
    await pool.release(first)
    assert sync_redis.zcard(key) == 1, "the release waits for a ride"
    before = evalsha_calls(sync_redis)
    second = await pool.try_acquire(key, 1)
    assert second is not None, "this process sees its own release at once"
    assert evalsha_calls(sync_redis) - before == 1, "one call for both"
    assert [m.decode() for m in sync_redis.zrange(key, 0, -1)] == [second]
    await pool.release(second)
    await async_redis().aclose()


async def test_a_release_with_no_acquisition_after_it_goes_on_its_own(
    sync_redis: redis.Redis,
) -> None:
    pool = SlotPool()
    keys = [f"portico:slots:test:{uuid.uuid4().hex}" for _ in range(2)]
    leases = [await pool.try_acquire(key, 2) for key in keys]
    for lease in leases:
        assert lease is not None
        await pool.release(lease)
    assert all(sync_redis.zcard(key) == 1 for key in keys), "not sent yet"
    await asyncio.sleep(RELEASE_FLUSH_SECONDS * 10)
    assert all(sync_redis.zcard(key) == 0 for key in keys)
    await async_redis().aclose()


async def test_releases_waiting_at_shutdown_are_flushed(
    sync_redis: redis.Redis,
) -> None:
    pool = SlotPool()
    key = f"portico:slots:test:{uuid.uuid4().hex}"
    lease = await pool.try_acquire(key, 1)
    assert lease is not None
    await pool.release(lease)
    await pool.releases_flush()  # what the lifespan shutdown calls
    assert sync_redis.zcard(key) == 0
    await async_redis().aclose()


async def test_releases_made_while_redis_is_down_are_sent_when_it_is_back(
    sync_redis: redis.Redis,
) -> None:
    pool = SlotPool()
    key = f"portico:slots:test:{uuid.uuid4().hex}"
    lease = await pool.try_acquire(key, 1)
    assert lease is not None
    # Redis was seen failing a moment ago: the pool waits before asking again.
    pool.redis_down_until = time.monotonic() + 0.2
    await pool.release(lease)
    await asyncio.sleep(RELEASE_FLUSH_SECONDS * 10)
    assert sync_redis.zcard(key) == 1, "kept while Redis counts as down"
    await asyncio.sleep(0.4)
    assert sync_redis.zcard(key) == 0, "sent once it counts as up again"
    await async_redis().aclose()


async def test_releases_a_failed_call_carried_are_sent_again(
    sync_redis: redis.Redis,
) -> None:
    """After a Redis restart each pooled connection fails once; the releases
    riding on such a call must not be lost with it."""
    pool = SlotPool()
    key = f"portico:slots:test:{uuid.uuid4().hex}"
    lease = await pool.try_acquire(key, 2)
    assert lease is not None
    await pool.release(lease)
    assert pool._script is not None
    script = pool._script[1]
    failures = [redis.exceptions.ConnectionError("Connection reset by peer")]

    async def failing_once(**kwargs: object) -> object:
        if failures:
            raise failures.pop()
        return await script(**kwargs)  # type: ignore[operator]

    pool._script = (pool._script[0], failing_once)
    assert await pool.try_acquire(key, 2) is not None, "served locally meanwhile"
    assert sync_redis.zcard(key) == 1, "the release went down with the call"
    await asyncio.sleep(settings.LIMITER_RETRY_SECONDS + 0.3)
    assert sync_redis.zcard(key) == 0, "and was sent again"
    await async_redis().aclose()
