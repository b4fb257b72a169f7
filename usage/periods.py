"""Quota periods as calendar windows in the portal's TIME_ZONE.

A day starts at local midnight, a week on Monday, a month on the 1st; a window
is [start, end). Daily rollups use the same local days, so any window is a
whole number of daily rows.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

from django.utils import timezone

PERIODS = ("day", "week", "month")
# Only for comparing quotas of different periods ("most generous per day").
PERIOD_DAYS = {"day": 1, "week": 7, "month": 30}


def local_zone() -> tzinfo:
    return timezone.get_default_timezone()


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=local_zone())


def local_day(at: datetime) -> date:
    return at.astimezone(local_zone()).date()


def window_days(period: str, day: date) -> tuple[date, date]:
    """The first day of the window holding `day`, and the first day after it."""
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        following = (start + timedelta(days=32)).replace(day=1)
        return start, following
    raise ValueError(f"unknown quota period {period!r}")


def window_of(period: str, at: datetime) -> tuple[datetime, datetime]:
    """The window of `period` that holds the instant `at`, as aware datetimes."""
    first, following = window_days(period, local_day(at))
    return local_midnight(first), local_midnight(following)


def window_label(period: str, start: datetime) -> str:
    """A stable name for a window, used in counter keys."""
    return f"{period}:{start.astimezone(local_zone()):%Y%m%d}"
