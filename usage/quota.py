"""Quota admission for the proxy, from cached figures: no database round trip
per request.

Two figures decide:

- the limit: every Quota row, held in memory per process and reloaded off the
  request path every USAGE_QUOTA_REFRESH_SECONDS (a few rows: one per user
  override and per group);
- "used in the current window": one counter per user and window (day, week,
  month) in Redis, or in this process without Redis. A counter is only ever
  created from the database's figure (on the first request of a user in a
  window, once, or by the rollup task's reconciliation) and then raised by the
  usage buffer's flusher, once per metered request and batch, never per
  chunk. The flusher adds to counters that exist only, so a counter never
  starts from a partial figure.

The request that crosses the limit is served (its size is unknown until it
ends); the next one gets 429. Counters lag the end of a request by at most one
flush interval, so parallel requests may overshoot by what they use meanwhile.
When Redis fails the proxy admits (quotas are a budget, not a security
boundary) and logs; the next reconciliation repairs the counters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import redis
import redis.asyncio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from apiproxy.errors import ProxyError
from usage.metering import MeteredRow
from usage.periods import PERIODS, local_day, local_zone, window_label, window_of
from usage.selectors import QuotaTable, quota_table, quota_used

logger = logging.getLogger(__name__)

KEY_PREFIX = "portico:quota:"
# Counters outlive their window a little so a late increment finds its key.
KEEP_AFTER_WINDOW = timedelta(days=2)
# Raise a counter to a figure, never lower it; keep it until the given expiry.
_RAISE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local value = tonumber(ARGV[1])
if value > current then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return math.max(value, current)
"""
# Add to the counters that exist; the others start from the database later.
_ADD_EXISTING = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, ARGV[i]) end
end
return #KEYS
"""


@dataclass(frozen=True, slots=True)
class QuotaState:
    """What the proxy tells the client about its quota."""

    limit: int | None = None  # None: no quota applies
    used: int = 0
    period: str | None = None
    resets_at: datetime | None = None

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.limit is None or self.resets_at is None:
            return []
        reset = self.resets_at.astimezone(local_zone()).isoformat()
        return [
            (b"x-portico-quota-limit-tokens", str(self.limit).encode()),
            (b"x-portico-quota-remaining-tokens", str(self.remaining).encode()),
            (b"x-portico-quota-reset", reset.encode()),
        ]


def counter_prefix(period: str, start: datetime) -> str:
    return f"{KEY_PREFIX}{window_label(period, start)}:"


def counter_key(user_id: int, period: str, start: datetime) -> str:
    return f"{counter_prefix(period, start)}{user_id}"


def _ttl(end: datetime, now: datetime) -> int:
    return max(60, int((end - now + KEEP_AFTER_WINDOW).total_seconds()))


def _in_thread(function, /, **kwargs):  # type: ignore[no-untyped-def]
    close_old_connections()
    try:
        return function(**kwargs)
    finally:
        close_old_connections()


class QuotaLimits:
    """The quota table in memory, reloaded in a worker thread when older than
    USAGE_QUOTA_REFRESH_SECONDS; while one request reloads, the others use the
    previous table. No asyncio.Lock: it would bind this module-level object to
    the first event loop that used it."""

    def __init__(self) -> None:
        self.table = QuotaTable(users={}, groups={})
        self.loaded_at = 0.0
        self._reloading = False

    def invalidate(self) -> None:
        self.loaded_at = 0.0

    async def current(self) -> QuotaTable:
        if time.monotonic() - self.loaded_at < settings.USAGE_QUOTA_REFRESH_SECONDS:
            return self.table
        if self._reloading:
            while self._reloading and not self.loaded_at:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            return self.table
        self._reloading = True
        try:
            self.table = await sync_to_async(_in_thread, thread_sensitive=False)(
                quota_table
            )
        except Exception:
            # The last table stays (none yet: nobody is limited) until the
            # database answers again.
            logger.exception("could not reload quotas; using the previous table")
        finally:
            self._reloading = False
        self.loaded_at = time.monotonic()
        return self.table


quota_limits = QuotaLimits()


class _LocalCounters:
    """Counters of this process, for portals without Redis."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[int, float]] = {}

    def get(self, key: str) -> int | None:
        held = self.values.get(key)
        if held is None or held[1] < time.time():
            return None
        return held[0]

    def raise_to(self, key: str, value: int, ttl: int) -> int:
        current = self.get(key)
        value = value if current is None else max(value, current)
        self.values[key] = (value, time.time() + ttl)
        return value

    def add_existing(self, increments: dict[str, int]) -> None:
        now = time.time()
        for key, amount in increments.items():
            held = self.values.get(key)
            if held is not None and held[1] >= now:
                self.values[key] = (held[0] + amount, held[1])
        if len(self.values) > 100_000:
            self.values = {k: v for k, v in self.values.items() if v[1] >= now}


local_counters = _LocalCounters()
_async_clients: dict[int, tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis]] = {}


def _redis_async() -> redis.asyncio.Redis | None:
    """This loop's client (an asyncio client belongs to the loop that made it)."""
    url = settings.REDIS_URL
    if not url:
        return None
    loop = asyncio.get_running_loop()
    held = _async_clients.get(id(loop))
    if held is None or held[0] is not loop:
        for stale in [
            k for k, (other, _) in _async_clients.items() if other.is_closed()
        ]:
            del _async_clients[stale]
        client = redis.asyncio.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        _async_clients[id(loop)] = (loop, client)
        return client
    return held[1]


async def _used(user_id: int, period: str, start: datetime, end: datetime) -> int:
    key = counter_key(user_id, period, start)
    now = timezone.now()
    client = _redis_async()
    value = (await client.get(key)) if client is not None else local_counters.get(key)
    if value is not None:
        return int(value)
    # First request of this user in this window (in this process without
    # Redis): start the counter from the database, once.
    figure = await sync_to_async(_in_thread, thread_sensitive=False)(
        quota_used, user_id=user_id, start=start, end=end
    )
    if client is None:
        return local_counters.raise_to(key, figure, _ttl(end, now))
    return int(await client.eval(_RAISE, 1, key, figure, _ttl(end, now)))


def quota_exhausted(state: QuotaState) -> ProxyError:
    assert state.resets_at is not None and state.limit is not None
    reset = state.resets_at.astimezone(local_zone())
    return ProxyError(
        429,
        f"You have used your quota of {state.limit:,} tokens per {state.period} "
        f"(tokens count times each model's weight). It resets at "
        f"{reset:%Y-%m-%d %H:%M} {reset.tzname()}. Ask the portal's operators "
        "if you need more.",
        type="insufficient_quota",
        code="insufficient_quota",
        headers=[(b"x-should-retry", b"false"), *state.headers()],
        outcome="insufficient_quota",
    )


async def quota_admit(
    *, user_id: int, group_ids: tuple[int, ...], model_weight: float
) -> QuotaState:
    """Step 3 (quota part): refuse with 429 insufficient_quota when the user's
    window is used up, else say what is left (QuotaState.headers() for the
    response). A model of weight 0 costs nothing and is always admitted."""
    table = await quota_limits.current()
    limit = table.limit_for(user_id=user_id, group_ids=group_ids)
    if limit is None:
        return QuotaState()
    start, end = window_of(limit.period, timezone.now())
    try:
        used = await _used(user_id, limit.period, start, end)
    except Exception:
        logger.warning("quota figure unavailable; admitting", exc_info=True)
        return QuotaState()
    state = QuotaState(
        limit=limit.tokens, used=used, period=limit.period, resets_at=end
    )
    if model_weight > 0 and used >= limit.tokens:
        raise quota_exhausted(state)
    return state


def _increments(rows: Iterable[MeteredRow]) -> dict[str, tuple[int, int]]:
    """Counter key -> (weighted tokens, ttl) for the rows' users and windows."""
    now = timezone.now()
    found: dict[str, tuple[int, int]] = {}
    # A batch's rows nearly all fall on one local day: its windows (and the
    # counter keys' labels) are worked out once per day, not once per row.
    windows_by_day: dict[date, list[tuple[str, int]]] = {}
    for row in rows:
        if not row.weighted_tokens:
            continue
        day = local_day(row.started_at)
        windows = windows_by_day.get(day)
        if windows is None:
            windows = windows_by_day[day] = []
            for period in PERIODS:
                start, end = window_of(period, row.started_at)
                windows.append((counter_prefix(period, start), _ttl(end, now)))
        for key_prefix, window_ttl in windows:
            key = f"{key_prefix}{row.user_id}"
            amount, ttl = found.get(key, (0, window_ttl))
            found[key] = (amount + row.weighted_tokens, ttl)
    return found


async def quota_usage_add(*, rows: Iterable[MeteredRow]) -> None:
    """Raise the users' existing counters by the rows' weighted tokens (one
    Redis round trip per batch). Called by the usage flusher exactly once per
    row; a failure is logged, not retried (reconciliation repairs it)."""
    found = _increments(rows)
    if not found:
        return
    client = _redis_async()
    if client is None:
        local_counters.add_existing({k: v[0] for k, v in found.items()})
        return
    keys = list(found)
    try:
        await client.eval(_ADD_EXISTING, len(keys), *keys, *(found[k][0] for k in keys))
    except (redis.RedisError, OSError):
        logger.warning("could not add usage to the quota counters", exc_info=True)


def counters_raise_sync(
    *, figures: dict[tuple[str, datetime, datetime], dict[int, int]], now: datetime
) -> int:
    """Raise counters to database figures, from sync code (the rollup task)."""
    url = settings.REDIS_URL
    checked = 0
    client = redis.Redis.from_url(url, socket_timeout=5) if url else None
    try:
        script = client.register_script(_RAISE) if client is not None else None
        for (period, start, end), used in figures.items():
            ttl = _ttl(end, now)
            pipe = client.pipeline(transaction=False) if client is not None else None
            for user_id, figure in used.items():
                key = counter_key(user_id, period, start)
                if script is not None and pipe is not None:
                    script(keys=[key], args=[figure, ttl], client=pipe)
                else:
                    local_counters.raise_to(key, figure, ttl)
                checked += 1
            if pipe is not None:
                pipe.execute()
    finally:
        if client is not None:
            client.close()
    return checked
