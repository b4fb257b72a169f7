"""Slot releases cost no round trip of their own: the next acquisition of the
process carries them, or they go alone within RELEASE_FLUSH_SECONDS, and at
shutdown. Real Redis."""

from __future__ import annotations

import asyncio
import uuid

import redis

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
