"""Reads for the usage pages: a researcher's overview (Settings > Usage) and
the operators' report in admin. Built on usage.selectors' exact totals."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group
from django.utils.safestring import SafeString

from accounts.models import User
from usage.charts import Series, series_for, tokens_chart_svg
from usage.periods import local_day, window_of
from usage.selectors import (
    TOTAL_SUMS,
    Limit,
    TotalsRow,
    quota_limit_for_user,
    quota_used,
    usage_recent,
    usage_totals,
)

DEFAULT_RANGE_DAYS = 30


@dataclass
class Overview:
    limit: Limit | None
    used: int  # weighted tokens in the quota window (or the month)
    window_start: datetime
    resets_at: datetime
    first_day: date
    end_day: date
    chart: SafeString
    series: list[Series]
    totals: TotalsRow
    recent: Any

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit.tokens - self.used)

    @property
    def last_day(self) -> date:
        return self.end_day - timedelta(days=1)

    @property
    def percent(self) -> int:
        if self.limit is None or not self.limit.tokens:
            return 100 if self.limit is not None else 0
        return min(100, round(100 * self.used / self.limit.tokens))


def usage_overview(
    *,
    user: User,
    now: datetime,
    first_day: date | None = None,
    end_day: date | None = None,
) -> Overview:
    """Settings > Usage: the quota and its window (the month when there is no
    quota), tokens per day by model and the totals over local days
    [first_day, end_day) (by default the last 30 days), and the latest
    requests. A model with no tokens (a mistyped name that was refused) is no
    chart series: it stays in the request list, not in the legend."""
    limit = quota_limit_for_user(user=user)
    start, end = window_of(limit.period if limit else "month", now)
    used = quota_used(user_id=user.pk, start=start, end=end)
    if first_day is None or end_day is None:
        end_day = local_day(now) + timedelta(days=1)
        first_day = end_day - timedelta(days=DEFAULT_RANGE_DAYS)
    by_day = usage_totals(
        first_day=first_day, end_day=end_day, by=("day", "model"), user_id=user.pk
    )
    tokens = {key: row.tokens for key, row in by_day.items() if row.tokens}
    return Overview(
        limit=limit,
        used=used,
        window_start=start,
        resets_at=end,
        first_day=first_day,
        end_day=end_day,
        chart=tokens_chart_svg(tokens=tokens, first_day=first_day, end_day=end_day),
        series=series_for(tokens),
        totals=_summed(list(by_day.values())),
        recent=usage_recent(user=user, limit=50),
    )


@dataclass
class ReportLine:
    label: str
    totals: TotalsRow
    users: int = 0


@dataclass
class Report:
    by: str
    first_day: date
    end_day: date
    lines: list[ReportLine] = field(default_factory=list)
    total: TotalsRow = field(default_factory=TotalsRow)


def _summed(rows: list[TotalsRow]) -> TotalsRow:
    total = TotalsRow()
    for row in rows:
        for name in TOTAL_SUMS:
            setattr(total, name, getattr(total, name) + getattr(row, name))
    return total


def usage_report(*, first_day: date, end_day: date, by: str) -> Report:
    """Totals per user, group or model over local days [first_day, end_day),
    largest first. Groups are today's memberships; a user in two groups counts
    in both, so group lines may add up to more than the total."""
    if by not in ("user", "group", "model"):
        raise ValueError("by user, group or model")
    report = Report(by=by, first_day=first_day, end_day=end_day)
    if by == "model":
        per_model = usage_totals(first_day=first_day, end_day=end_day, by=("model",))
        report.lines = [ReportLine(model, row) for (model,), row in per_model.items()]
        report.total = _summed(list(per_model.values()))
    else:
        per_user = {
            user_id: row
            for (user_id,), row in usage_totals(
                first_day=first_day, end_day=end_day, by=("user_id",)
            ).items()
        }
        report.total = _summed(list(per_user.values()))
        if by == "user":
            names = dict(
                User.objects.filter(pk__in=per_user).values_list("pk", "username")
            )
            report.lines = [
                ReportLine(names.get(user_id, f"(deleted user {user_id})"), row, 1)
                for user_id, row in per_user.items()
            ]
        else:
            members: dict[str, list[int]] = defaultdict(list)
            grouped: set[int] = set()
            memberships = User.groups.through.objects.filter(user_id__in=per_user)
            names = dict(Group.objects.values_list("pk", "name"))
            for user_id, group_id in memberships.values_list("user_id", "group_id"):
                members[names[group_id]].append(user_id)
                grouped.add(user_id)
            ungrouped = [user_id for user_id in per_user if user_id not in grouped]
            if ungrouped:
                members["(no group)"] = ungrouped
            report.lines = [
                ReportLine(name, _summed([per_user[u] for u in ids]), len(ids))
                for name, ids in members.items()
            ]
    report.lines.sort(key=lambda line: (-line.totals.weighted_tokens, line.label))
    return report
