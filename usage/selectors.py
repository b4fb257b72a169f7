"""Reads for usage: quota figures, the proxy's quota table, totals for pages
and reports, recent requests and exports.

Totals over a window read daily rollups for the window's days plus raw records
not yet rolled up, in one UNION statement: one snapshot, so a rollup run
committing meanwhile can neither hide a record nor count it twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import BigIntegerField, Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from usage.models import DailyUsage, DailyUserAnalytics, Quota, UsageRecord
from usage.periods import (
    PERIOD_DAYS,
    local_day,
    local_midnight,
    local_zone,
)

# Field names and order of `manage.py exportusage` and the CSV downloads.
EXPORT_FIELDS = (
    "request_id",
    "user",
    "key_id",
    "model",
    "endpoint",
    "prompt_tokens",
    "completion_tokens",
    "usage_source",
    "status",
    "finish_reason",
    "started_at",
    "ttft_ms",
    "duration_ms",
    "client",
    "project",
    # Added after the others, so that columns read by position stay put.
    "reasoning_tokens",
)
# The columns an export field is read from, where they differ from its name.
_EXPORT_COLUMNS = {"user": "user__username", "project": "project__name"}


@dataclass(frozen=True, slots=True)
class Limit:
    tokens: int
    period: str

    @property
    def per_day(self) -> float:
        return self.tokens / PERIOD_DAYS[self.period]


@dataclass(frozen=True)
class QuotaTable:
    """Every quota, as the proxy caches it (small: one row per listed user or
    group)."""

    users: dict[int, Limit]
    groups: dict[int, Limit]

    def limit_for(self, *, user_id: int, group_ids: tuple[int, ...]) -> Limit | None:
        """The user's own quota, else the most generous of their groups'
        (compared per day), else None (unlimited)."""
        own = self.users.get(user_id)
        if own is not None:
            return own
        candidates = [self.groups[g] for g in group_ids if g in self.groups]
        if not candidates:
            return None
        return max(candidates, key=lambda limit: (limit.per_day, limit.tokens))


def quota_table() -> QuotaTable:
    users: dict[int, Limit] = {}
    groups: dict[int, Limit] = {}
    for user_id, group_id, tokens, period in Quota.objects.values_list(
        "user_id", "group_id", "tokens", "period"
    ):
        if user_id is not None:
            users[user_id] = Limit(tokens, period)
        elif group_id is not None:
            groups[group_id] = Limit(tokens, period)
    return QuotaTable(users=users, groups=groups)


def quota_limit_for_user(*, user: Any) -> Limit | None:
    """The quota that applies to `user` now (two queries)."""
    group_ids = tuple(user.groups.values_list("pk", flat=True))
    quotas = Quota.objects.filter(Q(user=user) | Q(group_id__in=group_ids))
    users: dict[int, Limit] = {}
    groups: dict[int, Limit] = {}
    for quota in quotas:
        limit = Limit(quota.tokens, quota.period)
        if quota.user_id is not None:
            users[quota.user_id] = limit
        else:
            groups[quota.group_id] = limit  # type: ignore[index]
    table = QuotaTable(users=users, groups=groups)
    return table.limit_for(user_id=user.pk, group_ids=group_ids)


def _window_union(
    *, start: datetime, end: datetime, rolled: QuerySet[Any], pending: QuerySet[Any]
) -> QuerySet[Any]:
    """Daily rollups of the window's days UNION ALL its records not rolled up.
    `start` and `end` are local midnights (quota windows, whole days)."""
    return rolled.filter(day__gte=local_day(start), day__lt=local_day(end)).union(
        pending.filter(
            rollup_batch__isnull=True, started_at__gte=start, started_at__lt=end
        ),
        all=True,
    )


def _project_rolled(*, start: datetime, end: datetime) -> QuerySet[Any]:
    """Rolled-up use that billed a project, per user, in the window's days."""
    return (
        DailyUserAnalytics.objects.filter(
            day__gte=local_day(start), day__lt=local_day(end)
        )
        .exclude(project_id=0)
        .values("user_id")
        .annotate(weighted=Sum("weighted_tokens"))
        .order_by()
    )


def quota_used(*, user_id: int, start: datetime, end: datetime) -> int:
    """Weighted tokens a user has used in [start, end) from their own budget,
    from the database: what project keys and conversations billing a project
    used is the project's (projects.allocation), not the user's quota."""
    rows = _window_union(
        start=start,
        end=end,
        rolled=DailyUsage.objects.filter(user_id=user_id)
        .values("user_id")
        .annotate(weighted=Sum("weighted_tokens"))
        .order_by(),
        pending=UsageRecord.objects.filter(user_id=user_id, project__isnull=True)
        .values("user_id")
        .annotate(weighted=Sum("weighted_tokens"))
        .order_by(),
    )
    billed_projects = _project_rolled(start=start, end=end).filter(user_id=user_id)
    used = sum(int(row["weighted"] or 0) for row in rows)
    return max(0, used - sum(int(row["weighted"] or 0) for row in billed_projects))


def quota_used_by_user(*, start: datetime, end: datetime) -> dict[int, int]:
    """Weighted tokens per user in [start, end) from their own budgets, users
    with any usage only."""
    rows = _window_union(
        start=start,
        end=end,
        rolled=DailyUsage.objects.values("user_id")
        .annotate(weighted=Sum("weighted_tokens"))
        .order_by(),
        pending=UsageRecord.objects.filter(user__isnull=False, project__isnull=True)
        .values("user_id")
        .annotate(weighted=Sum("weighted_tokens"))
        .order_by(),
    )
    used: dict[int, int] = defaultdict(int)
    for row in rows:
        if row["user_id"] is not None:
            used[row["user_id"]] += int(row["weighted"] or 0)
    for row in _project_rolled(start=start, end=end):
        if row["user_id"] in used:
            used[row["user_id"]] = max(
                0, used[row["user_id"]] - int(row["weighted"] or 0)
            )
    return dict(used)


@dataclass
class TotalsRow:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0  # of the completion tokens
    weighted_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


TOTAL_SUMS = (  # TotalsRow's figures, summed from rollups and records
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "weighted_tokens",
)


_GROUPS = ("day", "user_id", "key_id", "model")


def usage_totals(
    *, first_day: date, end_day: date, by: tuple[str, ...], user_id: int | None = None
) -> dict[tuple[Any, ...], TotalsRow]:
    """Totals over local days [first_day, end_day) grouped by any of "day",
    "user_id", "key_id" (0: no key) and "model"; exact (rollups plus records
    not rolled up, in one statement)."""
    if not by or not set(by) <= set(_GROUPS):
        raise ValueError(f"group by one or more of {_GROUPS}")
    start, end = local_midnight(first_day), local_midnight(end_day)
    # Both sides of the UNION select only annotations, made in the same order,
    # so their columns line up.
    aliases = [f"g_{name}" for name in by]
    rolled_groups = {"day": F("day"), "user_id": F("user_id"),
                     "key_id": F("key_id"), "model": F("model")}  # fmt: skip
    pending_groups = {
        "day": TruncDate("started_at", tzinfo=local_zone()),
        "user_id": F("user_id"),
        "key_id": Coalesce("key_id", Value(0), output_field=BigIntegerField()),
        "model": F("model"),
    }
    rolled = DailyUsage.objects.all()
    pending = UsageRecord.objects.filter(user__isnull=False)
    if user_id is not None:
        rolled, pending = (
            rolled.filter(user_id=user_id),
            pending.filter(user_id=user_id),
        )
    for name, alias in zip(by, aliases, strict=True):
        rolled = rolled.annotate(**{alias: rolled_groups[name]})
        pending = pending.annotate(**{alias: pending_groups[name]})
    rolled = (
        rolled.values(*aliases)
        .annotate(**{f"s_{name}": Sum(name) for name in TOTAL_SUMS})
        .order_by()
    )
    pending = (
        pending.values(*aliases)
        .annotate(
            s_requests=Count("id"),
            s_errors=Count("id", filter=Q(status__gte=400)),
            s_prompt_tokens=Sum("prompt_tokens"),
            s_completion_tokens=Sum("completion_tokens"),
            s_reasoning_tokens=Sum("reasoning_tokens"),
            s_weighted_tokens=Sum("weighted_tokens"),
        )
        .order_by()
    )
    totals: dict[tuple[Any, ...], TotalsRow] = defaultdict(TotalsRow)
    for row in _window_union(start=start, end=end, rolled=rolled, pending=pending):
        target = totals[tuple(row[alias] for alias in aliases)]
        for name in TOTAL_SUMS:
            setattr(target, name, getattr(target, name) + int(row[f"s_{name}"] or 0))
    return dict(totals)


def usage_recent(*, user: Any, limit: int = 50) -> QuerySet[UsageRecord]:
    """A user's latest requests, newest first (metadata only: Portico never
    stores prompts or answers)."""
    return (
        UsageRecord.objects.filter(user=user)
        .select_related("key")
        .order_by("-started_at")[:limit]
    )


def usage_export_rows(
    *, user: Any = None, since: datetime | None = None, project_id: int | None = None
) -> Iterator[dict[str, Any]]:
    """One dict per usage record with EXPORT_FIELDS, oldest first, streamed
    from the database in chunks. `project`: the name of the project the
    request billed, None for the user's own budget."""
    records = UsageRecord.objects.order_by("started_at", "id")
    if user is not None:
        records = records.filter(user=user)
    if project_id is not None:
        records = records.filter(project_id=project_id)
    if since is not None:
        records = records.filter(started_at__gte=since)
    columns = [_EXPORT_COLUMNS.get(name, name) for name in EXPORT_FIELDS]
    values = records.values_list(*columns)
    for row in values.iterator(chunk_size=2000):
        data = dict(zip(EXPORT_FIELDS, row, strict=True))
        data["started_at"] = data["started_at"].isoformat()
        yield data
