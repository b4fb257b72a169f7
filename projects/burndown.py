"""A project window's burn-down: cumulative use against the allocation, the
day it runs out at the current rate, and the chart of both as inline SVG made
on the server (no script, no style attributes: a strict CSP allows it).

The rate is the average daily use over the last 7 days, today included (fewer
when the window began less than a week ago). Plain arithmetic on the daily
figures the selectors read; the chart shares usage.charts' frame and scale."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from usage.charts import (
    BOTTOM,
    HEIGHT,
    LEFT,
    PALETTE,
    TOP,
    WIDTH,
    _nice_ceiling,
    _short,
)

RATE_DAYS = 7
USED_COLOUR, LIMIT_COLOUR, PROJECTION_COLOUR = PALETTE[0], PALETTE[3], PALETTE[1]


@dataclass(frozen=True)
class Burndown:
    first_day: date
    end_day: date  # the first day after the window
    today: date
    limit: int
    used: int
    cumulative: tuple[int, ...]  # use through each day, first_day..today
    rate: float  # weighted tokens per day
    runs_out_on: date | None  # None: used up already, or outlasts the window

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def used_up(self) -> bool:
        return self.used >= self.limit

    @property
    def outlasts(self) -> bool:
        """At this rate the allocation lasts past the window's last day."""
        return not self.used_up and self.runs_out_on is None

    @property
    def last_day(self) -> date:
        return self.end_day - timedelta(days=1)


def burndown_compute(
    *, daily: dict[date, int], first_day: date, end_day: date, today: date, limit: int
) -> Burndown:
    """`daily` maps each local day of the window to the weighted tokens used
    that day; `today` lies in [first_day, end_day)."""
    today = min(max(today, first_day), end_day - timedelta(days=1))
    cumulative, total = [], 0
    for n in range((today - first_day).days + 1):
        total += daily.get(first_day + timedelta(days=n), 0)
        cumulative.append(total)
    counted = min(RATE_DAYS, (today - first_day).days + 1)
    recent = sum(daily.get(today - timedelta(days=n), 0) for n in range(counted))
    rate = recent / counted
    runs_out_on = None
    if total < limit and rate > 0:
        day = today + timedelta(days=math.ceil((limit - total) / rate))
        runs_out_on = day if day < end_day else None
    return Burndown(
        first_day=first_day,
        end_day=end_day,
        today=today,
        limit=limit,
        used=total,
        cumulative=tuple(cumulative),
        rate=rate,
        runs_out_on=runs_out_on,
    )


class _Frame:
    """Day ends and token counts to SVG coordinates."""

    def __init__(self, burndown: Burndown) -> None:
        self.days = max(1, (burndown.end_day - burndown.first_day).days)
        self.first_day = burndown.first_day
        self.ceiling = _nice_ceiling(max(burndown.limit, burndown.used))
        self.plot_w = WIDTH - LEFT - 8
        self.plot_h = HEIGHT - BOTTOM - TOP

    def x(self, days_done: float) -> float:
        return LEFT + self.plot_w * days_done / self.days

    def x_after(self, day: date) -> float:
        """The x of the end of `day`."""
        return self.x((day - self.first_day).days + 1)

    def y(self, tokens: float) -> float:
        return TOP + self.plot_h * (1 - min(tokens, self.ceiling) / self.ceiling)


def _axes(b: Burndown, f: _Frame) -> list[str]:
    parts = []
    for fraction in (0, 0.5, 1):
        y = f.y(f.ceiling * fraction)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="currentColor" stroke-opacity="0.15"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="currentColor">{_short(int(f.ceiling * fraction))}</text>'
        )
    step = max(1, f.days // 6)
    for n in range(0, f.days, step):
        day = b.first_day + timedelta(days=n)
        parts.append(
            f'<text x="{f.x(n):.1f}" y="{HEIGHT - 6}" text-anchor="start" '
            f'font-size="11" fill="currentColor">{day.day} {day:%b}</text>'
        )
    y = f.y(b.limit)
    parts.append(
        f'<line class="allocation" x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" '
        f'y2="{y:.1f}" stroke="{LIMIT_COLOUR}" stroke-width="1.5" '
        f'stroke-dasharray="6 4"><title>Allocation: {b.limit:,} tokens</title>'
        "</line>"
    )
    return parts


def _projection(b: Burndown, f: _Frame) -> list[str]:
    if b.used_up or b.rate <= 0:
        return []
    x0, y0 = f.x_after(b.today), f.y(b.used)
    if b.runs_out_on is not None:
        x1, y1 = f.x_after(b.runs_out_on), f.y(b.limit)
        title = f"Runs out on {b.runs_out_on:%a %d %b %Y} at this rate"
    else:
        days_left = (b.last_day - b.today).days
        x1, y1 = f.x(f.days), f.y(b.used + b.rate * days_left)
        title = "Lasts the window at this rate"
    return [
        f'<line class="projection" x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" '
        f'y2="{y1:.1f}" stroke="{PROJECTION_COLOUR}" stroke-width="2" '
        f'stroke-dasharray="3 3"><title>{escape(title)}</title></line>'
    ]


def burndown_svg(burndown: Burndown) -> SafeString:
    """The chart: the allocation (dashed), cumulative use through today and
    its projection at the current rate (dotted)."""
    f = _Frame(burndown)
    points = [f"{f.x(0):.1f},{f.y(0):.1f}"] + [
        f"{f.x(n + 1):.1f},{f.y(used):.1f}"
        for n, used in enumerate(burndown.cumulative)
    ]
    parts = [
        f'<svg class="burndown-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Cumulative use against the allocation" '
        f'xmlns="http://www.w3.org/2000/svg">',
        *_axes(burndown, f),
        f'<polyline class="used" points="{" ".join(points)}" fill="none" '
        f'stroke="{USED_COLOUR}" stroke-width="2"><title>Used through '
        f"{burndown.today:%a %d %b}: {burndown.used:,} tokens</title></polyline>",
        *_projection(burndown, f),
        "</svg>",
    ]
    return mark_safe("".join(parts))  # noqa: S308 (only numbers, dates and escaped text)  # nosec B308 B703
