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

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import redis
from django.utils import timezone

from portal.dbthread import in_db_thread
from portal.redisconn import async_redis, sync_redis
from portal.refreshing import Refreshing
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
# (projects.allocation raises its counters with the same script.)
ADD_EXISTING = """
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
    exhausted: bool = False

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


quota_limits: Refreshing[QuotaTable] = Refreshing(
    load=quota_table,
    empty=QuotaTable(users={}, groups={}),
    interval_setting="USAGE_QUOTA_REFRESH_SECONDS",
    # Without a table (the database down at start) nobody is limited: quotas
    # are a budget, not a security boundary.
    fail_open=True,
)


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


async def _used(user_id: int, period: str, start: datetime, end: datetime) -> int:
    key = counter_key(user_id, period, start)
    now = timezone.now()
    client = async_redis()
    value = (await client.get(key)) if client is not None else local_counters.get(key)
    if value is not None:
        return int(value)
    # First request of this user in this window (in this process without
    # Redis): start the counter from the database, once.
    figure = await in_db_thread(quota_used, user_id=user_id, start=start, end=end)
    if client is None:
        return local_counters.raise_to(key, figure, _ttl(end, now))
    return int(await client.eval(_RAISE, 1, key, figure, _ttl(end, now)))


async def quota_check(
    *, user_id: int, group_ids: tuple[int, ...], model_weight: float
) -> QuotaState:
    """Step 3 (quota part): where the user stands in the current window.
    `exhausted` is set when the window is used up; admission turns that into
    the 429 (a model of weight 0 costs nothing and is never refused)."""
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
        return replace(state, exhausted=True)
    return state


def _increments(rows: Iterable[MeteredRow]) -> dict[str, tuple[int, int]]:
    """Counter key -> (weighted tokens, ttl) for the rows' users and windows."""
    now = timezone.now()
    found: dict[str, tuple[int, int]] = {}
    # A batch's rows nearly all fall on one local day: its windows (and the
    # counter keys' labels) are worked out once per day, not once per row.
    windows_by_day: dict[date, list[tuple[str, int]]] = {}
    for row in rows:
        # What a project key or a conversation billing a project uses is the
        # project's, never its owner's own quota (projects.allocation).
        if not row.weighted_tokens or row.project_id is not None:
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
    client = async_redis()
    if client is None:
        local_counters.add_existing({k: v[0] for k, v in found.items()})
        return
    keys = list(found)
    try:
        await client.eval(ADD_EXISTING, len(keys), *keys, *(found[k][0] for k in keys))
    except (redis.RedisError, OSError):
        logger.warning("could not add usage to the quota counters", exc_info=True)


def counters_raise_sync(
    *, figures: dict[tuple[str, datetime, datetime], dict[int, int]], now: datetime
) -> int:
    """Raise counters to database figures, from sync code (the rollup task)."""
    checked = 0
    client = sync_redis()
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
    return checked
