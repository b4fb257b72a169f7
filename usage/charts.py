"""A stacked bar chart of tokens per day by model, as inline SVG made on the
server: no script and no style attributes, so it needs nothing a strict
Content-Security-Policy would forbid. Each bar has a <title> (the browser's
tooltip) and the page shows the same numbers in a legend and a table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Distinguishable in light and dark schemes, and for common colour blindness.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#9c755f",
)
OTHER_COLOUR = "#bab0ac"

WIDTH, HEIGHT = 720, 220
LEFT, BOTTOM, TOP = 56, 24, 10


@dataclass(frozen=True)
class Series:
    model: str
    colour: str
    total: int


def _nice_ceiling(value: int) -> int:
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        ceiling = int(step * magnitude)
        if ceiling >= value:
            return ceiling
    return value


def _short(value: int) -> str:
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return str(value)


def series_for(tokens: dict[tuple[date, str], int]) -> list[Series]:
    """Models by total, largest first, each with its colour; beyond the
    palette, models share the "other" colour."""
    totals: dict[str, int] = {}
    for (_, model), value in tokens.items():
        totals[model] = totals.get(model, 0) + value
    ordered = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return [
        Series(model, PALETTE[i] if i < len(PALETTE) else OTHER_COLOUR, total)
        for i, (model, total) in enumerate(ordered)
    ]


def tokens_chart_svg(
    *, tokens: dict[tuple[date, str], int], first_day: date, end_day: date
) -> SafeString:
    """SVG markup for days [first_day, end_day); `tokens` maps (day, model)
    to prompt + completion tokens."""
    days = [first_day + timedelta(days=n) for n in range((end_day - first_day).days)]
    series = series_for(tokens)
    per_day = {day: sum(tokens.get((day, s.model), 0) for s in series) for day in days}
    ceiling = _nice_ceiling(max(per_day.values(), default=0))
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(1, len(days))
    bar = max(2.0, slot * 0.7)
    parts = [
        f'<svg class="usage-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Tokens per day by model" xmlns="http://www.w3.org/2000/svg">'
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="currentColor" stroke-opacity="0.15"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="currentColor">{_short(int(ceiling * fraction))}'
            "</text>"
        )
    label_every = max(1, len(days) // 10)
    for index, day in enumerate(days):
        x = LEFT + slot * index + (slot - bar) / 2
        y = TOP + plot_h
        for s in series:
            value = tokens.get((day, s.model), 0)
            if not value:
                continue
            height = plot_h * value / ceiling
            y -= height
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}" fill="{s.colour}" data-model="'
                f'{escape(s.model)}" data-day="{day.isoformat()}"><title>'
                f"{escape(s.model)}, {day:%a %d %b}: {value:,} tokens</title></rect>"
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle" '
                f'font-size="11" fill="currentColor">{day:%d}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped)  # nosec B308 B703
