"""The rollup job: raw usage records folded into hourly (UTC) and daily (local)
totals per user, key and model. Writes, kept apart from usage/services.py
because the job is one concern with its own invariants.

Why not a time watermark alone: a record's `recorded_at` (or id) is stamped
before its batch commits, so a slow commit, or the burst written when Postgres
comes back after an outage, can land behind a watermark that has already
passed its time. Instead every record carries `rollup_batch`, null until it is
counted. A run takes the `RollupState` row lock (runs never overlap), marks a
batch of uncounted records with a new batch number, adds exactly the marked
records to their hour and day buckets, and commits all of it at once. So:

- a record is counted exactly once, whenever it arrives: a late record (an
  outage, a spool file replayed hours later) is added to its own hour and day;
- a crashed run rolls back and the next run does the same work again; a
  repeated run finds nothing to add, so the totals do not move;
- `rolled_through` (the watermark) is the start of the last complete run:
  every record committed before it is in the totals.

`usage_rollup_rebuild` recomputes whole days from the raw records (which stay
until USAGE_RETENTION_DAYS have passed) and gives the same totals as the
incremental runs did.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncHour
from django.utils import timezone

from usage.models import DailyUsage, HourlyUsage, RollupState, UsageRecord
from usage.periods import local_midnight, local_zone

logger = logging.getLogger(__name__)

STATE_NAME = "usage"
TOTAL_FIELDS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "weighted_tokens",
)


@dataclass
class Totals:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    weighted_tokens: int = 0

    def add(self, other: dict[str, Any]) -> None:
        for name in TOTAL_FIELDS:
            setattr(self, name, getattr(self, name) + int(other[name] or 0))


@dataclass
class RollupResult:
    records: int = 0
    batches: int = 0
    buckets: dict[str, int] = field(default_factory=lambda: {"hourly": 0, "daily": 0})


def rollup_state_ensure() -> None:
    try:
        with transaction.atomic():
            RollupState.objects.get_or_create(name=STATE_NAME)
    except IntegrityError:
        pass  # made by a concurrent run


def _state_locked() -> RollupState:
    return RollupState.objects.select_for_update().get(name=STATE_NAME)


def _aggregate(records: QuerySet[UsageRecord], when: Any) -> list[dict[str, Any]]:
    return list(
        records.filter(user__isnull=False)
        .annotate(when=when)
        .values("when", "user_id", "key_id", "model")
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=Q(status__gte=400)),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            weighted_tokens=Sum("weighted_tokens"),
        )
        .order_by()
    )


def _buckets(rows: Iterable[dict[str, Any]]) -> dict[tuple[Any, ...], Totals]:
    buckets: dict[tuple[Any, ...], Totals] = defaultdict(Totals)
    for row in rows:
        key = (row["when"], row["user_id"], row["key_id"] or 0, row["model"])
        buckets[key].add(row)
    return buckets


def _hourly(records: QuerySet[UsageRecord]) -> dict[tuple[Any, ...], Totals]:
    return _buckets(_aggregate(records, TruncHour("started_at", tzinfo=UTC)))


def _daily(records: QuerySet[UsageRecord]) -> dict[tuple[Any, ...], Totals]:
    return _buckets(_aggregate(records, TruncDate("started_at", tzinfo=local_zone())))


def _add_into(
    table: type[HourlyUsage] | type[DailyUsage],
    when_field: str,
    buckets: dict[tuple[Any, ...], Totals],
) -> int:
    """Add totals to existing bucket rows, creating the missing ones. Only
    called under the state row lock, so read-modify-write cannot race."""
    if not buckets:
        return 0
    whens = {key[0] for key in buckets}
    users = {key[1] for key in buckets}
    existing = {
        (getattr(row, when_field), row.user_id, row.key_id, row.model): row
        for row in table.objects.filter(
            **{f"{when_field}__in": whens}, user_id__in=users
        )
    }
    changed, created = [], []
    for key, totals in buckets.items():
        row = existing.get(key)
        if row is None:
            when, user_id, key_id, model = key
            row = table(user_id=user_id, key_id=key_id, model=model)
            setattr(row, when_field, when)
            created.append(row)
        else:
            changed.append(row)
        for name in TOTAL_FIELDS:
            setattr(row, name, getattr(row, name) + getattr(totals, name))
    table.objects.bulk_update(changed, TOTAL_FIELDS, batch_size=500)
    table.objects.bulk_create(created, batch_size=500)
    return len(buckets)


def _roll_batch(state: RollupState, size: int, result: RollupResult) -> int:
    batch = state.last_batch + 1
    pending = (
        UsageRecord.objects.filter(rollup_batch__isnull=True)
        .order_by("id")
        .values("id")[:size]
    )
    claimed = UsageRecord.objects.filter(
        id__in=pending, rollup_batch__isnull=True
    ).update(rollup_batch=batch)
    if not claimed:
        return 0
    state.last_batch = batch
    state.save(update_fields=["last_batch", "updated_at"])
    marked = UsageRecord.objects.filter(rollup_batch=batch)
    result.buckets["hourly"] += _add_into(HourlyUsage, "hour", _hourly(marked))
    result.buckets["daily"] += _add_into(DailyUsage, "day", _daily(marked))
    result.records += claimed
    result.batches += 1
    return claimed


def usage_rollup(*, batch_size: int = 5000) -> RollupResult:
    """Add every record not yet counted to the hourly and daily totals.

    Each batch (mark, add, commit) is one transaction under the state row's
    lock; running it again, concurrently or after a crash, never counts a
    record twice and never misses one (see the module docstring)."""
    started = timezone.now()
    rollup_state_ensure()
    with transaction.atomic():
        state = _state_locked()
        if state.state == RollupState.State.STARTED:
            logger.warning("the previous usage rollup did not finish; carrying on")
        state.state = RollupState.State.STARTED
        state.save(update_fields=["state", "updated_at"])
    result = RollupResult()
    while True:
        with transaction.atomic():
            claimed = _roll_batch(_state_locked(), batch_size, result)
        if claimed < batch_size:
            break
    with transaction.atomic():
        state = _state_locked()
        state.state = RollupState.State.DONE
        if state.rolled_through is None or state.rolled_through < started:
            state.rolled_through = started
        state.save(update_fields=["state", "rolled_through", "updated_at"])
    return result


def _ceil_hour(at: datetime) -> datetime:
    floor = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return floor if floor == at else floor + timedelta(hours=1)


def _floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def usage_rollup_rebuild(*, since: date, until: date) -> RollupResult:
    """Recompute the totals of the local days [since, until) from raw records.

    First counts whatever is pending, then, under the lock, deletes and
    recomputes those days' daily rows and the hourly rows of the UTC hours
    that lie wholly inside them, from records already counted. Gives the same
    totals as the incremental runs; refuses days whose raw records were pruned.
    """
    if until <= since:
        raise ValueError("until must be after since")
    result = usage_rollup()
    start, end = local_midnight(since), local_midnight(until)
    with transaction.atomic():
        state = _state_locked()
        if state.pruned_before is not None and start < state.pruned_before:
            raise ValueError(
                f"raw records before {state.pruned_before:%Y-%m-%d} were pruned; "
                "their totals cannot be rebuilt"
            )
        counted = UsageRecord.objects.filter(rollup_batch__isnull=False)
        first_hour, end_hour = _ceil_hour(start), _floor_hour(end)
        HourlyUsage.objects.filter(hour__gte=first_hour, hour__lt=end_hour).delete()
        hours = counted.filter(started_at__gte=first_hour, started_at__lt=end_hour)
        result.buckets["hourly"] = _add_into(HourlyUsage, "hour", _hourly(hours))
        DailyUsage.objects.filter(day__gte=since, day__lt=until).delete()
        days = counted.filter(started_at__gte=start, started_at__lt=end)
        result.buckets["daily"] = _add_into(DailyUsage, "day", _daily(days))
    return result
