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
    STALE_RETRY_SECONDS,
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


def _with_lookup_id(lookup_id: str) -> str:
    """A well-formed key (valid checksum) under a chosen lookup id."""
    from accounts.keyformat import SECRET_LENGTH, _base62_random, _checksum

    secret = _base62_random(SECRET_LENGTH)
    body = f"sk-{settings.API_KEY_SITE_TAG}_{lookup_id}{secret}"
    return body + _checksum(body)


async def test_an_unknown_lookup_id_is_refused_without_a_query_whatever_the_secret(
    cache: KeyCache,
) -> None:
    lookup_id = key_generate(site_tag=settings.API_KEY_SITE_TAG).lookup_id
    for _ in range(20):
        assert await cache.get(_with_lookup_id(lookup_id)) is None
    assert cache.loads == 1


async def test_a_wrong_secret_for_a_real_lookup_id_never_locks_out_the_real_key(
    alice: User, cache: KeyCache
) -> None:
    issued = await in_thread(apikey_make, user=alice)
    for _ in range(5):
        assert await cache.get(_with_lookup_id(issued.key.lookup_id)) is None
    assert await cache.get(issued.raw) is not None


async def test_a_flood_of_made_up_keys_never_evicts_a_key_in_use(
    alice: User, cache: KeyCache, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.AUTH_FAILURES_PER_MINUTE = 1_000_000
    monkeypatch.setattr("accounts.keycache.MAX_REFUSALS", 10)
    issued = await in_thread(apikey_make, user=alice)
    assert await cache.get(issued.raw) is not None
    for _ in range(40):
        fake = key_generate(site_tag=settings.API_KEY_SITE_TAG).raw
        assert await cache.get(fake, client="198.51.100.7") is None
    loads = cache.loads
    assert await cache.get(issued.raw) is not None
    assert cache.loads == loads  # still a cache hit
    assert cache.stats().refusals <= 10


async def test_an_address_that_keeps_failing_is_throttled_before_the_database(
    alice: User, cache: KeyCache, clock: FakeClock, settings: Any
) -> None:
    from accounts.keycache import KeyThrottled

    settings.AUTH_FAILURES_PER_MINUTE = 5
    issued = await in_thread(apikey_make, user=alice)
    for _ in range(5):
        fake = key_generate(site_tag=settings.API_KEY_SITE_TAG).raw
        assert await cache.get(fake, client="198.51.100.7") is None
    loads = cache.loads
    with pytest.raises(KeyThrottled):
        await cache.get(
            key_generate(site_tag=settings.API_KEY_SITE_TAG).raw, client="198.51.100.7"
        )
    assert cache.loads == loads
    # Other addresses, and keys already known good, are not affected.
    assert await cache.get(issued.raw, client="198.51.100.8") is not None
    clock.now += 61
    assert await cache.get(issued.raw, client="198.51.100.7") is not None


class DatabaseSwitch:
    """A key loader whose database can be switched off, as in an outage."""

    def __init__(self) -> None:
        self.up = True
        self.asked = 0

    def __call__(self, raw_key: str):  # type: ignore[no-untyped-def]
        from django.db import OperationalError

        from accounts.keycache import _principal_load

        self.asked += 1
        if not self.up:
            raise OperationalError("the database system is shutting down")
        return _principal_load(raw_key)


@pytest.fixture
def database() -> DatabaseSwitch:
    return DatabaseSwitch()


@pytest.fixture
def outage_cache(database: DatabaseSwitch, clock: FakeClock) -> KeyCache:
    return KeyCache(loader=database, clock=clock, writer=LastUsedWriter(delay=60))


async def test_while_the_database_is_away_a_key_accepted_before_is_served_on(
    alice: User,
    clock: FakeClock,
    settings,
    database: DatabaseSwitch,
    outage_cache: KeyCache,
) -> None:
    from django.db import OperationalError

    cache = outage_cache
    issued = await in_thread(apikey_make, user=alice)
    other = await in_thread(apikey_make, user=alice)
    assert await cache.get(issued.raw) is not None
    database.up = False
    clock.now += settings.API_KEY_CACHE_SECONDS + 60
    assert await cache.get(issued.raw) is not None, "stale, but the database is away"
    assert cache.stale_served == 1
    asked = database.asked
    for _ in range(50):
        assert await cache.get(issued.raw) is not None
    assert database.asked == asked, "not one database attempt per request"
    clock.now += STALE_RETRY_SECONDS
    assert await cache.get(issued.raw) is not None
    assert database.asked == asked + 1, "asked again after a while"
    with pytest.raises(OperationalError):
        await cache.get(other.raw)  # never seen: nothing to serve (the proxy: 503)
    clock.now += settings.API_KEY_STALE_SECONDS
    with pytest.raises(OperationalError):
        await cache.get(issued.raw)
    database.up = True
    assert await cache.get(issued.raw) is not None


async def test_a_revocation_is_not_outlived_by_a_database_outage(
    alice: User, database: DatabaseSwitch, outage_cache: KeyCache
) -> None:
    from django.db import OperationalError

    issued = await in_thread(apikey_make, user=alice)
    assert await outage_cache.get(issued.raw) is not None
    outage_cache.clear()  # what a revocation signal does
    database.up = False
    with pytest.raises(OperationalError):
        await outage_cache.get(issued.raw)
