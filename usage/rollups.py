"""The rollup job: raw usage records folded into hourly (UTC) and daily (local)
totals per user, key and model, and into the staff analytics' daily tables
(per user and project, per model and backend: how requests ended, tokens, a
histogram of time to first token; usage.models.AnalyticsTotals). Writes, kept
apart from usage/services.py because the job is one concern with its own
invariants.

Why not a time watermark alone: a record's `recorded_at` (or id) is stamped
before its batch commits, so a slow commit, or the burst written when Postgres
comes back after an outage, can land behind a watermark that has already
passed its time. Instead every record carries `rollup_batch`, null until it is
counted. A run takes the `RollupState` row lock (runs never overlap), marks a
batch of uncounted records with a new batch number, adds exactly the marked
records to their hour and day buckets (one INSERT ... SELECT ... ON CONFLICT
DO UPDATE per table, adding), and commits all of it at once. So:

- a record is counted exactly once, whenever it arrives: a late record (an
  outage, a spool file replayed hours later) is added to its own hour and day;
- a crashed run rolls back and the next run does the same work again; a
  repeated run finds nothing to add, so the totals do not move;
- `rolled_through` (the watermark) is the start of the last complete run:
  every record committed before it is in the totals.

`usage_rollup_rebuild` recomputes whole days from the raw records (which stay
until USAGE_RETENTION_DAYS have passed) and gives the same totals as the
incremental runs did; it also fills the analytics tables for days counted
before they existed (`manage.py rollupusage --rebuild --since ... --until ...`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Aggregate, Count, F, Model, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate, TruncHour
from django.utils import timezone

from usage.models import (
    TTFT_BOUNDS_MS,
    TTFT_BUCKETS,
    DailyModelAnalytics,
    DailyUsage,
    DailyUserAnalytics,
    HourlyUsage,
    RollupState,
    UsageRecord,
)
from usage.periods import local_midnight, local_zone

logger = logging.getLogger(__name__)

STATE_NAME = "usage"
TOTAL_FIELDS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "weighted_tokens",
)


@dataclass
class RollupResult:
    records: int = 0
    batches: int = 0
    buckets: dict[str, int] = field(
        default_factory=lambda: {"hourly": 0, "daily": 0, "analytics": 0}
    )


def rollup_state_ensure() -> None:
    try:
        with transaction.atomic():
            RollupState.objects.get_or_create(name=STATE_NAME)
    except IntegrityError:
        pass  # made by a concurrent run


def _state_locked() -> RollupState:
    return RollupState.objects.select_for_update().get(name=STATE_NAME)


def _usage_sums() -> dict[str, Aggregate]:
    return {
        "requests": Count("id"),
        "errors": Count("id", filter=Q(status__gte=400)),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        "reasoning_tokens": Sum("reasoning_tokens"),
        "weighted_tokens": Sum("weighted_tokens"),
    }


SERVED = Q(status__gte=200, status__lt=400)


def _ttft_bucket(index: int) -> Q:
    """Served, streamed requests whose first token came within bucket
    `index` (a non-streamed answer's "first token" is the whole answer)."""
    bucket = SERVED & Q(stream=True, ttft_ms__isnull=False)
    if index > 0:
        bucket &= Q(ttft_ms__gte=TTFT_BOUNDS_MS[index - 1])
    if index < len(TTFT_BOUNDS_MS):
        bucket &= Q(ttft_ms__lt=TTFT_BOUNDS_MS[index])
    return bucket


def _analytics_sums() -> dict[str, Aggregate]:
    """The columns of usage.models.AnalyticsTotals (how a request ended is
    read from its status; see there)."""
    return {
        "served": Count("id", filter=SERVED),
        "served_browser": Count("id", filter=SERVED & Q(client="browser")),
        "refused_429": Count("id", filter=Q(status=429)),
        "refused_503": Count("id", filter=Q(status=503)),
        "refused_other": Count(
            "id", filter=Q(status__gte=400, status__lt=500) & ~Q(status=429)
        ),
        "failed": Count(
            "id", filter=(Q(status__gte=500) & ~Q(status=503)) | Q(status__lt=200)
        ),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        "weighted_tokens": Sum("weighted_tokens"),
        **{
            name: Count("id", filter=_ttft_bucket(index))
            for index, name in enumerate(TTFT_BUCKETS)
        },
    }


@dataclass(frozen=True)
class Target:
    """A rollup table: its key columns (each an expression over a usage
    record) and the columns it adds up."""

    name: str
    table: type[Model]
    keys: dict[str, Any]
    sums: dict[str, Aggregate]


def _targets() -> list[Target]:
    local_day = TruncDate("started_at", tzinfo=local_zone())
    return [
        Target(
            "hourly",
            HourlyUsage,
            {
                "hour": TruncHour("started_at", tzinfo=UTC),
                "user_id": "user_id",
                "key_id": Coalesce("key_id", Value(0)),
                "model": "model",
            },
            _usage_sums(),
        ),
        Target(
            "daily",
            DailyUsage,
            {
                "day": local_day,
                "user_id": "user_id",
                "key_id": Coalesce("key_id", Value(0)),
                "model": "model",
            },
            _usage_sums(),
        ),
        Target(
            "analytics",
            DailyUserAnalytics,
            {
                "day": local_day,
                "user_id": "user_id",
                "project_id": Coalesce("project_id", Value(0)),
            },
            _analytics_sums(),
        ),
        Target(
            "analytics",
            DailyModelAnalytics,
            {
                "day": local_day,
                "model": "model",
                "backend_id": Coalesce("backend_id", Value(0)),
            },
            _analytics_sums(),
        ),
    ]


def _add_into(target: Target, records: QuerySet[UsageRecord]) -> int:
    """Add the records' totals to their bucket rows, creating the missing
    ones: one INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE (add)
    per table, so the records never travel to Python. Only called under the
    state row lock; the bucket rows touched are returned."""
    quote = connection.ops.quote_name
    keys = {f"k_{column}": expression for column, expression in target.keys.items()}
    sums = {f"s_{column}": aggregate for column, aggregate in target.sums.items()}
    grouped = (
        records.filter(user__isnull=False)
        .annotate(**{alias: _expression(e) for alias, e in keys.items()})
        .values(*keys)
        .annotate(**sums)
        .order_by()
    )
    select, params = grouped.query.sql_with_params()
    table = quote(target.table._meta.db_table)
    columns = ", ".join(quote(column) for column in [*target.keys, *target.sums])
    aliases = ", ".join(quote(alias) for alias in [*keys, *sums])
    conflict = ", ".join(quote(column) for column in target.keys)
    add = ", ".join(
        f"{quote(column)} = {table}.{quote(column)} + EXCLUDED.{quote(column)}"
        for column in target.sums
    )
    # "WHERE 1 = 1": SQLite needs a WHERE before ON CONFLICT in INSERT SELECT.
    # Names come from the models; the values are bound parameters.
    statement = (
        f"INSERT INTO {table} ({columns}) SELECT {aliases} "  # noqa: S608 (names)  # nosec B608
        f"FROM ({select}) AS bucket "
        f"WHERE 1 = 1 ON CONFLICT ({conflict}) DO UPDATE SET {add}"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return max(cursor.rowcount, 0)


def _expression(expression: Any) -> Any:
    return F(expression) if isinstance(expression, str) else expression


def _add_everywhere(records: QuerySet[UsageRecord], result: RollupResult) -> None:
    for target in _targets():
        result.buckets[target.name] += _add_into(target, records)


def _roll_batch(state: RollupState, size: int, result: RollupResult) -> int:
    """Mark the `size` oldest uncounted records (by id) with a new batch
    number and add them to every rollup table. The batch is found by its id
    range, so each step reads the batch through the primary key (or the
    partial index of uncounted records), never the whole table."""
    pending = UsageRecord.objects.filter(rollup_batch__isnull=True).order_by("id")
    first = pending.values_list("id", flat=True).first()
    if first is None:
        return 0
    last = pending.values_list("id", flat=True)[size - 1 : size].first()
    if last is None:
        last = pending.values_list("id", flat=True).last()
    batch = state.last_batch + 1
    claimed = UsageRecord.objects.filter(
        rollup_batch__isnull=True, id__gte=first, id__lte=last
    ).update(rollup_batch=batch)
    if not claimed:
        return 0
    state.last_batch = batch
    state.save(update_fields=["last_batch", "updated_at"])
    marked = UsageRecord.objects.filter(id__gte=first, id__lte=last, rollup_batch=batch)
    _add_everywhere(marked, result)
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
    recomputes those days' daily and analytics rows and the hourly rows of the
    UTC hours that lie wholly inside them, from records already counted. Gives the same
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
        hours = counted.filter(started_at__gte=first_hour, started_at__lt=end_hour)
        days = counted.filter(started_at__gte=start, started_at__lt=end)
        result.buckets = {name: 0 for name in result.buckets}
        for target in _targets():
            if target.table is HourlyUsage:
                HourlyUsage.objects.filter(
                    hour__gte=first_hour, hour__lt=end_hour
                ).delete()
                source = hours
            else:
                target.table.objects.filter(day__gte=since, day__lt=until).delete()
                source = days
            result.buckets[target.name] += _add_into(target, source)
    return result
