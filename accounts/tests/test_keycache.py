"""The proxy's cached key gate, `KeyCache.get` / `key_principal_get`.

These tests commit (the cache loads keys from worker threads, which use their
own database connections) and talk to the real test Redis.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
import redis
import time_machine
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.utils import timezone

from accounts.keycache import (
    GENERATION_KEY,
    KeyCache,
    LastUsedWriter,
    key_cache,
    key_principal_get,
)
from accounts.keyformat import key_generate
from accounts.models import ApiKey, User
from accounts.services import apikey_revoke, apikey_roll, user_deactivate
from tests.factories import apikey_make

pytestmark = pytest.mark.django_db(transaction=True)

T = TypeVar("T")


async def in_thread(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ORM set-up from an async test, closing the thread's connection after
    (a connection left open would keep the test database from being dropped)."""

    def call() -> T:
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return await sync_to_async(call, thread_sensitive=False)()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> KeyCache:
    return KeyCache(clock=clock, writer=LastUsedWriter(delay=60))


async def test_a_cache_hit_needs_no_database_and_no_thread(
    alice: User, cache: KeyCache
) -> None:
    issued = await in_thread(apikey_make, user=alice)
    first = await cache.get(issued.raw)
    assert first is not None and first.user_id == alice.pk
    for _ in range(200):
        assert await cache.get(issued.raw) == first
    assert cache.loads == 1


async def test_a_malformed_key_is_refused_without_a_load(cache: KeyCache) -> None:
    for value in ["", "sk-ptc_", "Bearer", "x" * 1_000_000, "sk-ptc_" + "A" * 48]:
        assert await cache.get(value) is None
    assert cache.loads == 0


async def test_concurrent_misses_for_one_key_load_it_once(
    alice: User, cache: KeyCache
) -> None:
    issued = await in_thread(apikey_make, user=alice)
    results = await asyncio.gather(*(cache.get(issued.raw) for _ in range(50)))
    assert all(result is not None for result in results)
    assert cache.loads == 1


async def test_the_revoking_process_refuses_the_key_at_once(
    alice: User, cache: KeyCache
) -> None:
    issued = await in_thread(apikey_make, user=alice)
    assert await cache.get(issued.raw) is not None
    await in_thread(apikey_revoke, key=issued.key)
    assert await cache.get(issued.raw) is None


async def test_a_deactivated_user_is_refused_at_once(
    alice: User, cache: KeyCache
) -> None:
    issued = await in_thread(apikey_make, user=alice)
    assert await cache.get(issued.raw) is not None
    await in_thread(user_deactivate, user=alice)
    assert await cache.get(issued.raw) is None


async def test_a_bump_seen_in_redis_drops_the_cache_within_a_second(
    alice: User, cache: KeyCache, clock: FakeClock
) -> None:
    issued = await in_thread(apikey_make, user=alice)
    assert await cache.get(issued.raw) is not None
    # Another process revokes: the row changes and the Redis token moves, but
    # this process's own counter does not.
    await in_thread(
        ApiKey.objects.filter(pk=issued.key.pk).update, revoked_at=timezone.now()
    )
    redis.Redis.from_url(settings.REDIS_URL).set(GENERATION_KEY, "elsewhere")
    clock.now += 0.5
    assert await cache.get(issued.raw) is not None  # not polled yet
    clock.now += 0.5
    assert await cache.get(issued.raw) is None
    assert cache.loads == 2


async def test_expiry_is_checked_on_every_hit(alice: User, cache: KeyCache) -> None:
    expires_at = timezone.now() + timedelta(minutes=5)
    issued = await in_thread(apikey_make, user=alice, expires_at=expires_at)
    assert await cache.get(issued.raw) is not None
    with time_machine.travel(expires_at + timedelta(seconds=1)):
        assert await cache.get(issued.raw) is None
    assert cache.loads == 1


async def test_a_rolled_key_works_through_its_grace_period_only(
    alice: User, cache: KeyCache
) -> None:
    issued = await in_thread(apikey_make, user=alice)
    assert await cache.get(issued.raw) is not None
    new = await in_thread(apikey_roll, key=issued.key, grace_seconds=60)
    assert await cache.get(issued.raw) is not None
    assert await cache.get(new.raw) is not None
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        assert await cache.get(issued.raw) is None
        assert await cache.get(new.raw) is not None


async def test_refusals_are_cached_for_two_seconds_only(
    cache: KeyCache, clock: FakeClock
) -> None:
    unknown = key_generate(site_tag="ptc").raw
    assert await cache.get(unknown) is None
    assert await cache.get(unknown) is None
    assert cache.loads == 1
    clock.now += 2.0
    assert await cache.get(unknown) is None
    assert cache.loads == 2


async def test_entries_are_rechecked_after_the_cache_period_without_a_signal(
    alice: User, cache: KeyCache, clock: FakeClock
) -> None:
    issued = await in_thread(apikey_make, user=alice)
    assert await cache.get(issued.raw) is not None
    # A change made behind the services' back (no generation bump).
    await in_thread(User.objects.filter(pk=alice.pk).update, is_active=False)
    clock.now += settings.API_KEY_CACHE_SECONDS - 1
    assert await cache.get(issued.raw) is not None
    clock.now += 1
    assert await cache.get(issued.raw) is None


async def test_without_redis_the_database_decides_every_second(
    alice: User, cache: KeyCache, clock: FakeClock, settings
) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    issued = await in_thread(apikey_make, user=alice)
    assert await cache.get(issued.raw) is not None
    await in_thread(
        ApiKey.objects.filter(pk=issued.key.pk).update, revoked_at=timezone.now()
    )
    clock.now += 1
    assert await cache.get(issued.raw) is None


async def test_a_hundred_uses_make_at_most_one_write(
    alice: User, clock: FakeClock
) -> None:
    writer = LastUsedWriter(delay=0.05)
    cache = KeyCache(clock=clock, writer=writer)
    issued = await in_thread(apikey_make, user=alice)
    for _ in range(100):
        assert await cache.get(issued.raw) is not None
        clock.now += 0.1  # 10 seconds in all
    await asyncio.sleep(0.3)
    await writer.drain()
    assert writer.writes == 1
    key = await in_thread(ApiKey.objects.get, pk=issued.key.pk)
    assert key.last_used_at is not None
    assert abs((timezone.now() - key.last_used_at).total_seconds()) < 30
    # A minute later, the next use is handed over again.
    clock.now += 60
    assert await cache.get(issued.raw) is not None
    await writer.drain()
    assert writer.writes == 2


async def test_the_module_gate_serves_the_process_wide_cache(alice: User) -> None:
    issued = await in_thread(apikey_make, user=alice)
    principal = await key_principal_get(issued.raw)
    assert principal is not None and principal.key_id == issued.key.pk
    assert await key_principal_get(issued.raw[:-1]) is None
    await key_cache.drain()


async def test_fuzzed_presented_keys_are_refused_without_a_load(
    alice: User, cache: KeyCache
) -> None:
    issued = await in_thread(apikey_make, user=alice)
    rng = random.Random(7)
    for _ in range(2000):
        raw = bytearray(issued.raw.encode())
        for _ in range(rng.randrange(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        presented = raw.decode("latin-1")
        if presented != issued.raw:
            assert await cache.get(presented) is None
        assert (
            await cache.get(rng.randbytes(rng.randrange(80)).decode("latin-1")) is None
        )
    assert cache.loads == 0
