"""An allocation's windows: the whole period, or one calendar month of it
when the allocation comes in monthly instalments. Plain data and arithmetic,
shared by the proxy's enforcement and the pages (no ORM here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.utils import timezone


@dataclass(frozen=True, slots=True)
class AllocationTerms:
    project_id: int
    name: str
    allocation_tokens: int
    starts_on: date
    ends_on: date
    monthly_instalments: bool
    member_cap_tokens: int | None
    # While it runs, the project's keys use the dedicated service class.
    dedicated: bool = False


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime  # aware, inclusive
    end: datetime  # aware, exclusive
    limit: int  # weighted tokens in this window

    @property
    def label(self) -> str:
        return self.start.strftime("%Y%m%d")


def _local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _months(starts_on: date, ends_on: date) -> list[tuple[date, date]]:
    """The calendar months the period touches, cut to the period."""
    months, first = [], starts_on
    while first <= ends_on:
        next_month = (first.replace(day=1) + timedelta(days=32)).replace(day=1)
        months.append((first, min(ends_on, next_month - timedelta(days=1))))
        first = next_month
    return months


def window_at(terms: AllocationTerms, now: datetime) -> Window | None:
    """The window `now` falls in; None before the start or after the end."""
    today = timezone.localdate(now)
    if today < terms.starts_on or today > terms.ends_on:
        return None
    if not terms.monthly_instalments:
        return Window(
            start=_local_midnight(terms.starts_on),
            end=_local_midnight(terms.ends_on + timedelta(days=1)),
            limit=terms.allocation_tokens,
        )
    months = _months(terms.starts_on, terms.ends_on)
    share = terms.allocation_tokens // len(months)
    for first, last in months:
        if first <= today <= last:
            return Window(
                start=_local_midnight(first),
                end=_local_midnight(last + timedelta(days=1)),
                limit=share,
            )
    return None  # unreachable: today lies in the period


def next_tokens_at(terms: AllocationTerms, now: datetime) -> date | None:
    """When more tokens come: the next instalment's first day, or None (the
    allocation ends with this window)."""
    window = window_at(terms, now)
    if window is None or not terms.monthly_instalments:
        return None
    following = timezone.localdate(window.end)
    return following if following <= terms.ends_on else None
