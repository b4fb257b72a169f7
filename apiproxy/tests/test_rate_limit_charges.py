"""Token charges (the real count minus the admission's estimate) reach Redis
without a round trip of their own: on this process's next admission, or on
their own within CHARGE_FLUSH_SECONDS, and at shutdown. Real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import redis

from apiproxy.ratelimit import CHARGE_FLUSH_SECONDS, Bucket, RateLimiter
from portal.redisconn import async_redis
from tests.fixtures_proxy import ProxyRig
from tests.redisprobe import evalsha_calls


def tokens_in_redis(client: redis.Redis, name: str) -> int:
    return sum(int(v) for v in client.hvals(f"portico:rl:{name}:t"))


async def test_a_charge_rides_on_the_next_admission(sync_redis: redis.Redis) -> None:
    limiter = RateLimiter()
    name = f"user:test-{uuid.uuid4().hex}"
    bucket = Bucket(name, rpm=100, tpm=100_000)
    assert (await limiter.admit([bucket], cost=10, request_id="r1")).allowed
    limiter.charge([bucket], 25)  # the answer came to 35 tokens, not 10
    assert tokens_in_redis(sync_redis, name) == 10, "nothing sent yet"
    before = evalsha_calls(sync_redis)
    verdict = await limiter.admit([bucket], cost=7, request_id="r2")
    assert evalsha_calls(sync_redis) - before == 1, "one round trip for both"
    # The admission already counted the charge it carried (the figures are
    # those it judged by, before its own estimate).
    assert verdict.remaining_tokens == 100_000 - 35
    assert tokens_in_redis(sync_redis, name) == 42
    await asyncio.sleep(CHARGE_FLUSH_SECONDS * 3)
    assert tokens_in_redis(sync_redis, name) == 42, "not sent a second time"
    await async_redis().aclose()


async def test_a_charge_with_no_admission_after_it_goes_on_its_own(
    sync_redis: redis.Redis,
) -> None:
    limiter = RateLimiter()
    name = f"key:test-{uuid.uuid4().hex}"
    bucket = Bucket(name, rpm=0, tpm=1_000)
    unlimited_tokens = Bucket(f"user:test-{uuid.uuid4().hex}", rpm=5, tpm=0)
    await limiter.admit([bucket, unlimited_tokens], cost=10, request_id="r1")
    limiter.charge([bucket, unlimited_tokens], -4)  # estimate was high
    limiter.charge([bucket, unlimited_tokens], 3)  # another request, summed
    await asyncio.sleep(CHARGE_FLUSH_SECONDS * 4)
    assert tokens_in_redis(sync_redis, name) == 9
    # A bucket without a token limit is not corrected: only its estimate.
    assert tokens_in_redis(sync_redis, unlimited_tokens.name) == 10
    await async_redis().aclose()


async def test_charges_waiting_at_shutdown_are_flushed(sync_redis: redis.Redis) -> None:
    limiter = RateLimiter()
    name = f"user:test-{uuid.uuid4().hex}"
    bucket = Bucket(name, rpm=0, tpm=1_000)
    limiter.charge([bucket], 12)
    await limiter.charges_flush()  # what the lifespan shutdown calls
    assert tokens_in_redis(sync_redis, name) == 12
    await async_redis().aclose()


def test_a_proxied_answer_is_charged_its_real_token_count(
    proxy: ProxyRig, settings, sync_redis: redis.Redis
) -> None:
    from accounts.models import ApiKey
    from apiproxy.limits import limit_tables
    from catalog.models import KeyLimits

    settings.LIMITS_REFRESH_SECONDS = 0
    key = ApiKey.objects.get(user=proxy.user)
    KeyLimits.objects.create(key=key, tpm=100_000)
    limit_tables.invalidate()
    with httpx.Client(timeout=10) as http:
        answer = http.post(
            proxy.server.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {proxy.key}"},
            json={
                "model": "fake-chat",
                "messages": [{"role": "user", "content": "a prompt " * 40}],
            },
        )
    assert answer.status_code == 200
    spent = answer.json()["usage"]["total_tokens"]
    deadline = time.monotonic() + 2
    while tokens_in_redis(sync_redis, f"key:{key.pk}") != spent:
        assert time.monotonic() < deadline, (
            tokens_in_redis(sync_redis, f"key:{key.pk}"),
            spent,
        )
        time.sleep(0.02)
