"""Writes for usage: quotas, retention, and the quota counters'
reconciliation. The meter's batch insert is in usage/recordwrite.py, the
rollup job in usage/rollups.py."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from usage.models import Quota, RollupState, UsageRecord
from usage.periods import PERIODS, local_day, local_midnight, window_of
from usage.quota import counters_raise_sync
from usage.rollups import STATE_NAME, rollup_state_ensure
from usage.selectors import quota_used_by_user

logger = logging.getLogger(__name__)


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
    now = now or timezone.now()
    figures: dict[tuple[str, datetime, datetime], dict[int, int]] = {}
    for period in PERIODS:
        start, end = window_of(period, now)
        figures[(period, start, end)] = quota_used_by_user(start=start, end=end)
    return counters_raise_sync(figures=figures, now=now)
