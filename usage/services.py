"""Writes for usage: batch inserts of metered requests, quotas, retention, and
the quota counters' reconciliation. The rollup job is in usage/rollups.py."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from usage.metering import MeteredRow
from usage.models import Quota, RollupState, UsageRecord
from usage.periods import PERIODS, local_day, local_midnight, window_of
from usage.rollups import STATE_NAME, rollup_state_ensure

logger = logging.getLogger(__name__)

_MAX_SMALL = 32767
_MAX_INT = 2_147_483_647


def _bounded(value: int | None, ceiling: int = _MAX_INT) -> int:
    return max(0, min(int(value or 0), ceiling))


def _row_values(row: MeteredRow) -> tuple:
    """The row's values in field order (_ROW_COLUMNS), clamped to the columns' ranges
    (a bogus count from a backend must not fail the whole batch)."""
    return (
        row.request_id,
        row.user_id,
        row.key_id,
        row.model[:200],
        row.backend_id,
        row.endpoint[:40],
        row.client,
        row.stream,
        _bounded(row.status, _MAX_SMALL),
        row.finish_reason[:40],
        _bounded(row.prompt_tokens),
        _bounded(row.completion_tokens),
        row.usage_source,
        max(0, row.weighted_tokens),
        None if row.ttft_ms is None else _bounded(row.ttft_ms),
        _bounded(row.duration_ms),
        _bounded(row.retry_count, _MAX_SMALL),
        row.started_at,
    )


_ROW_COLUMNS = tuple(field.name for field in dataclass_fields(MeteredRow))


@cache
def _unnest_insert_sql() -> str:
    """One INSERT ... SELECT FROM unnest(column arrays): a batch of any size is
    one statement with 18 parameters, with no model instance built per row.
    The casts come from the model's fields, so a changed column type follows."""
    fields = {field.attname: field for field in UsageRecord._meta.concrete_fields}
    table = connection.ops.quote_name(UsageRecord._meta.db_table)
    names = ", ".join(
        connection.ops.quote_name(fields[name].column)
        for name in (*_ROW_COLUMNS, "recorded_at")
    )
    arrays = ", ".join(
        f"%s::{fields[name].db_type(connection)}[]" for name in _ROW_COLUMNS
    )
    unique = connection.ops.quote_name(fields["request_id"].column)
    # Names come from the model and every value is a parameter.
    insert = f"INSERT INTO {table} ({names}) SELECT *, %s FROM unnest({arrays})"  # noqa: S608
    return f"{insert} ON CONFLICT ({unique}) DO NOTHING"


def usage_records_create(*, rows: Sequence[MeteredRow]) -> int:
    """Insert one record per row, idempotent by request id: a batch written
    twice (a retry after an unclear failure, a spool file replayed by two
    processes) leaves one record each. Returns the number of rows offered.

    On PostgreSQL the batch is one set-based statement: the meter's writer
    shares its process (and the GIL) with the proxy, so its Python work per
    row is kept to building one tuple."""
    if not rows:
        return 0
    values = [_row_values(row) for row in rows]
    if connection.vendor != "postgresql":
        records = [
            UsageRecord(**dict(zip(_ROW_COLUMNS, row, strict=True))) for row in values
        ]
        UsageRecord.objects.bulk_create(records, ignore_conflicts=True)
        return len(records)
    columns = [list(column) for column in zip(*values, strict=True)]
    with connection.cursor() as cursor:
        # recorded_at as auto_now_add stamps it: this process's clock at write.
        cursor.execute(_unnest_insert_sql(), [timezone.now(), *columns])
    return len(values)


def quota_set(
    *, user: User | None = None, group: Group | None = None, tokens: int, period: str
) -> Quota:
    """Give a user (an override) or a group (its members' default) a quota.

    Exactly one of user and group. Proxies pick the change up within
    USAGE_QUOTA_REFRESH_SECONDS; usage already counted in the current window
    stays counted."""
    if (user is None) == (group is None):
        raise ValueError("give a user or a group, not both")
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    if tokens < 0:
        raise ValueError("tokens must be 0 or more")
    quota, _ = Quota.objects.update_or_create(
        user=user, group=group, defaults={"tokens": tokens, "period": period}
    )
    return quota


def quota_clear(*, user: User | None = None, group: Group | None = None) -> bool:
    """Remove a user's or group's quota; True when there was one."""
    if (user is None) == (group is None):
        raise ValueError("give a user or a group, not both")
    deleted, _ = Quota.objects.filter(user=user, group=group).delete()
    return bool(deleted)


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    cutoff: datetime
    kept_unrolled: int


def usage_records_prune(
    *, now: datetime | None = None, batch_size: int = 10_000
) -> PruneResult:
    """Delete raw records that started before local midnight USAGE_RETENTION_DAYS
    days ago, but only those already rolled up: the hourly and daily totals
    are kept for ever, and a record that arrived late is pruned only after
    the next rollup has counted it. Deletes in batches to keep locks short."""
    now = now or timezone.now()
    cutoff = local_midnight(
        local_day(now) - timedelta(days=settings.USAGE_RETENTION_DAYS)
    )
    deleted = 0
    while True:
        ids = list(
            UsageRecord.objects.filter(
                started_at__lt=cutoff, rollup_batch__isnull=False
            ).values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            break
        deleted += UsageRecord.objects.filter(id__in=ids).delete()[0]
    rollup_state_ensure()
    with transaction.atomic():
        state = RollupState.objects.select_for_update().get(name=STATE_NAME)
        if state.pruned_before is None or state.pruned_before < cutoff:
            state.pruned_before = cutoff
            state.save(update_fields=["pruned_before", "updated_at"])
    kept = UsageRecord.objects.filter(
        started_at__lt=cutoff, rollup_batch__isnull=True
    ).count()
    if kept:
        logger.warning(
            "%d usage records older than the retention wait for a rollup", kept
        )
    return PruneResult(deleted=deleted, cutoff=cutoff, kept_unrolled=kept)


def quota_counters_reconcile(*, now: datetime | None = None) -> int:
    """Raise every user's cached "used in this window" figure (Redis) to what
    the database holds for the current day, week and month; returns how many
    figures were checked.

    Never lowers a figure: a higher cached figure holds requests that are
    counted but still waiting in some process's buffer. This repairs figures
    Redis lost (restart, eviction) and any increment a process missed."""
    from usage.quota import counters_raise_sync
    from usage.selectors import quota_used_by_user

    now = now or timezone.now()
    figures: dict[tuple[str, datetime, datetime], dict[int, int]] = {}
    for period in PERIODS:
        start, end = window_of(period, now)
        figures[(period, start, end)] = quota_used_by_user(start=start, end=end)
    return counters_raise_sync(figures=figures, now=now)
