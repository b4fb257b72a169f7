"""Step 3 (rate part): requests and tokens per minute, per user and per key,
in one Redis round trip shared by every process.

Requests use a sliding log (exact: never more than the limit in any 60 s);
tokens use per-second buckets summed over the last 60 s, charged with the
prompt estimate on admission and corrected with the real count when the
response ends. All buckets of a request are checked and charged by one Lua
script, so concurrent processes can never both take the last slot.

When Redis fails the limiter degrades to per-process limits of
(limit / WEB_PROCESSES) instead of refusing everyone or letting everyone
through, logs the transition once, and tries Redis again after a short pause.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio
import redis.exceptions
from django.conf import settings

from apiproxy.flushsoon import FlushSoon
from apiproxy.ratelimit_local import WINDOW_MS, Bucket, LocalLimiter
from portal.redisconn import async_redis

logger = logging.getLogger(__name__)


_ADMIT_SCRIPT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local member = ARGV[3]
local buckets = tonumber(ARGV[4])
-- Charges this process settled since its last call (KEYS after the buckets',
-- ARGV pairs of second and tokens after the buckets'), applied first so that
-- this admission already counts them.
for j = buckets * 2 + 1, #KEYS do
  local at = 5 + buckets * 3 + (j - buckets * 2 - 1) * 2
  redis.call('HINCRBY', KEYS[j], ARGV[at], ARGV[at + 1])
  redis.call('PEXPIRE', KEYS[j], window + 2000)
end
local denied = 0
local retry = 0
local out = {}
for i = 1, buckets do
  local rpm = tonumber(ARGV[5 + (i - 1) * 3])
  local tpm = tonumber(ARGV[6 + (i - 1) * 3])
  local cost = tonumber(ARGV[7 + (i - 1) * 3])
  local rkey = KEYS[(i - 1) * 2 + 1]
  local tkey = KEYS[(i - 1) * 2 + 2]
  redis.call('ZREMRANGEBYSCORE', rkey, '-inf', now - window)
  local count = redis.call('ZCARD', rkey)
  local reset_req = 0
  if count > 0 then
    local oldest = redis.call('ZRANGE', rkey, 0, 0, 'WITHSCORES')
    reset_req = tonumber(oldest[2]) + window - now
  end
  local used = 0
  local oldest_sec = nil
  local fields = redis.call('HGETALL', tkey)
  for j = 1, #fields, 2 do
    local sec = tonumber(fields[j])
    if (sec + 1) * 1000 <= now - window then
      redis.call('HDEL', tkey, fields[j])
    else
      used = used + tonumber(fields[j + 1])
      if oldest_sec == nil or sec < oldest_sec then oldest_sec = sec end
    end
  end
  local reset_tok = 0
  if oldest_sec ~= nil then reset_tok = (oldest_sec + 1) * 1000 + window - now end
  if rpm > 0 and count >= rpm then
    denied = 1
    if reset_req > retry then retry = reset_req end
  end
  if tpm > 0 and used > 0 and used + cost > tpm then
    denied = 1
    if reset_tok > retry then retry = reset_tok end
  end
  table.insert(out, count)
  table.insert(out, reset_req)
  table.insert(out, used)
  table.insert(out, reset_tok)
end
if denied == 0 then
  local sec = math.floor(now / 1000)
  for i = 1, buckets do
    local cost = tonumber(ARGV[7 + (i - 1) * 3])
    local rkey = KEYS[(i - 1) * 2 + 1]
    local tkey = KEYS[(i - 1) * 2 + 2]
    redis.call('ZADD', rkey, now, member)
    redis.call('PEXPIRE', rkey, window)
    if cost > 0 then
      redis.call('HINCRBY', tkey, sec, cost)
      redis.call('PEXPIRE', tkey, window + 2000)
    end
  end
end
table.insert(out, 1, retry)
table.insert(out, 1, denied)
return out
"""

_CHARGE_SCRIPT = """
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], ARGV[i * 2 - 1], ARGV[i * 2])
  redis.call('PEXPIRE', KEYS[i], 62000)
end
return 1
"""

# Settled charges wait at most this long for the next admission to carry
# them; then they go on their own (one round trip for all that waited).
CHARGE_FLUSH_SECONDS = 0.05


@dataclass(slots=True)
class Verdict:
    allowed: bool
    retry_after_ms: int = 0
    # Figures of the tightest bucket, for the x-ratelimit-* headers.
    limit_requests: int = 0
    remaining_requests: int = 0
    reset_requests_ms: int = 0
    limit_tokens: int = 0
    remaining_tokens: int = 0
    reset_tokens_ms: int = 0
    degraded: bool = False

    def headers(self) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        if self.limit_requests:
            out += [
                (b"x-ratelimit-limit-requests", str(self.limit_requests).encode()),
                (
                    b"x-ratelimit-remaining-requests",
                    str(self.remaining_requests).encode(),
                ),
                (
                    b"x-ratelimit-reset-requests",
                    duration_format(self.reset_requests_ms),
                ),
            ]
        if self.limit_tokens:
            out += [
                (b"x-ratelimit-limit-tokens", str(self.limit_tokens).encode()),
                (b"x-ratelimit-remaining-tokens", str(self.remaining_tokens).encode()),
                (b"x-ratelimit-reset-tokens", duration_format(self.reset_tokens_ms)),
            ]
        if not self.allowed:
            seconds = max(1, math.ceil(self.retry_after_ms / 1000))
            out += [
                (b"retry-after", str(seconds).encode()),
                (b"retry-after-ms", str(max(1, self.retry_after_ms)).encode()),
            ]
        return out


def duration_format(ms: int) -> bytes:
    """OpenAI's reset format: "1s", "6m0s", "250ms"."""
    if ms <= 0:
        return b"0s"
    if ms < 1000:
        return f"{ms}ms".encode()
    seconds = math.ceil(ms / 1000)
    minutes, seconds = divmod(seconds, 60)
    return (f"{minutes}m{seconds}s" if minutes else f"{seconds}s").encode()


def _verdict(
    buckets: list[Bucket], denied: bool, retry: int, figures: list[int], degraded: bool
) -> Verdict:
    verdict = Verdict(allowed=not denied, retry_after_ms=retry, degraded=degraded)
    best_requests: float = math.inf
    best_tokens: float = math.inf
    for index, bucket in enumerate(buckets):
        count, reset_req, used, reset_tok = figures[index * 4 : index * 4 + 4]
        # After an admitted request the figures include it.
        if not denied:
            count += 1
        if bucket.rpm and bucket.rpm - count < best_requests:
            best_requests = bucket.rpm - count
            verdict.limit_requests = bucket.rpm
            verdict.remaining_requests = max(0, bucket.rpm - count)
            verdict.reset_requests_ms = max(0, int(reset_req) or WINDOW_MS)
        if bucket.tpm and bucket.tpm - used < best_tokens:
            best_tokens = bucket.tpm - used
            verdict.limit_tokens = bucket.tpm
            verdict.remaining_tokens = max(0, bucket.tpm - int(used))
            verdict.reset_tokens_ms = max(0, int(reset_tok))
    return verdict


@dataclass(frozen=True, slots=True)
class LimiterStats:
    degraded: bool  # Redis unreachable: limits hold per process


class RateLimiter:
    def stats(self) -> LimiterStats:
        return LimiterStats(degraded=self.degraded)

    def __init__(self) -> None:
        self.local = LocalLimiter()
        self.degraded_until = 0.0
        self.degraded = False
        # Registered scripts per client: EVALSHA, so the script text travels
        # once per connection pool, not with every request.
        self._scripts: dict[int, tuple[object, object]] = {}
        # Settled charges not yet in Redis: (bucket name, second) -> tokens.
        self._pending: dict[tuple[str, int], int] = {}
        self._flush_soon = FlushSoon(self.charges_flush, delay=CHARGE_FLUSH_SECONDS)

    def _scripts_for(self, client: redis.asyncio.Redis) -> tuple[Any, Any]:
        scripts = self._scripts.get(id(client))
        if scripts is None:
            scripts = (
                client.register_script(_ADMIT_SCRIPT),
                client.register_script(_CHARGE_SCRIPT),
            )
            self._scripts = {id(client): scripts}
        return scripts

    def _redis_failed(self, error: Exception) -> None:
        self.degraded_until = time.monotonic() + settings.LIMITER_RETRY_SECONDS
        if not self.degraded:
            self.degraded = True
            logger.warning(
                "rate limiter degraded: Redis unavailable (%s); per-process limits "
                "of limit/%d apply",
                type(error).__name__,
                settings.WEB_PROCESSES,
            )

    def _redis_ok(self) -> None:
        if self.degraded:
            self.degraded = False
            logger.warning("rate limiter recovered: Redis limits apply again")

    async def admit(
        self, buckets: list[Bucket], *, cost: int, request_id: str
    ) -> Verdict:
        buckets = [b for b in buckets if b.rpm or b.tpm]
        if not buckets:
            return Verdict(allowed=True)
        client = async_redis()
        now_ms = time.time() * 1000
        if client is not None and time.monotonic() >= self.degraded_until:
            keys: list[str] = []
            args: list[object] = [int(now_ms), WINDOW_MS, request_id, len(buckets)]
            for bucket in buckets:
                keys += [_requests_key(bucket.name), _tokens_key(bucket.name)]
                args += [bucket.rpm, bucket.tpm, cost]
            pending = self._pending_take()
            for (name, second), tokens in pending.items():
                keys.append(_tokens_key(name))
                args += [second, tokens]
            try:
                admit_script, _ = self._scripts_for(client)
                reply = await admit_script(keys=keys, args=args)
            except (redis.exceptions.RedisError, OSError, TimeoutError) as error:
                self._redis_failed(error)
                self._pending_to_local(pending)
            else:
                self._redis_ok()
                figures = [int(value) for value in reply[2:]]
                return _verdict(buckets, bool(reply[0]), int(reply[1]), figures, False)
        shared = client is not None  # Redis configured but down: share the limit
        share = settings.WEB_PROCESSES if shared else 1
        local_buckets = [
            Bucket(b.name, _divided(b.rpm, share), _divided(b.tpm, share))
            for b in buckets
        ]
        denied, retry, figures = self.local.admit(
            local_buckets, [cost] * len(local_buckets), now_ms
        )
        return _verdict(local_buckets, denied, retry, figures, shared)

    def charge(self, buckets: list[Bucket], tokens: int) -> None:
        """Correct the token buckets once the real count is known. No I/O
        here: the correction rides on this process's next admission call (or
        goes on its own within CHARGE_FLUSH_SECONDS), so a request costs one
        limiter round trip, not two."""
        names = [b.name for b in buckets if b.tpm]
        if not names or tokens == 0:
            return
        if async_redis() is None or time.monotonic() < self.degraded_until:
            self.local.charge(names, tokens, time.time() * 1000)
            return
        second = int(time.time())
        for name in names:
            self._pending[name, second] = self._pending.get((name, second), 0) + tokens
        self._flush_soon.schedule()

    def _pending_take(self) -> dict[tuple[str, int], int]:
        pending, self._pending = self._pending, {}
        self._flush_soon.cancel()
        return pending

    def _pending_to_local(self, pending: dict[tuple[str, int], int]) -> None:
        """Redis failed with charges on board: the fallback counts them."""
        for (name, second), tokens in pending.items():
            self.local.charge([name], tokens, second * 1000.0)

    async def charges_flush(self) -> None:
        """Send the charges that no admission has carried (and at shutdown)."""
        pending = self._pending_take()
        if not pending:
            return
        client = async_redis()
        if client is None:
            self._pending_to_local(pending)
            return
        keys = [_tokens_key(name) for name, _ in pending]
        args = [
            value
            for (_, second), tokens in pending.items()
            for value in (second, tokens)
        ]
        try:
            _, charge_script = self._scripts_for(client)
            await charge_script(keys=keys, args=args)
        except (redis.exceptions.RedisError, OSError, TimeoutError) as error:
            self._redis_failed(error)
            self._pending_to_local(pending)


def _requests_key(name: str) -> str:
    return f"portico:rl:{name}:r"


def _tokens_key(name: str) -> str:
    return f"portico:rl:{name}:t"


def _divided(limit: int, share: int) -> int:
    return 0 if not limit else max(1, limit // max(1, share))


rate_limiter = RateLimiter()
