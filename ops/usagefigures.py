"""The staff analytics' figures: the rollup's columns summed over some rows,
and time to first token read from their histogram (usage.models.TTFT_BOUNDS_MS).

A percentile is interpolated inside the bucket that holds it (nearest rank),
so it is right to within that bucket; in the open last bucket it is the
bucket's lower bound, and the page says "at least".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from usage.models import TTFT_BOUNDS_MS, TTFT_BUCKETS

COUNT_FIELDS = (
    "served",
    "served_browser",
    "refused_429",
    "refused_503",
    "refused_other",
    "failed",
    "prompt_tokens",
    "completion_tokens",
    "weighted_tokens",
)
SUMMED = COUNT_FIELDS + TTFT_BUCKETS

# The share of 503 answers from which the page marks a model as short of
# capacity. 429s are mostly users' own limits, so they do not count here.
REPLICA_503_SHARE = 0.01


def ttft_percentile(counts: Sequence[int], fraction: float) -> float | None:
    """The `fraction` percentile (nearest rank) of a TTFT histogram, in ms,
    interpolated inside the bucket that holds it; None without data. In the
    open last bucket it is that bucket's lower bound (the page says "at
    least")."""
    total = sum(counts)
    if not total:
        return None
    rank = max(1, math.ceil(fraction * total))
    below = 0
    for index, count in enumerate(counts):
        if count and below + count >= rank:
            low = TTFT_BOUNDS_MS[index - 1] if index else 0
            if index == len(TTFT_BOUNDS_MS):
                return float(low)
            high = TTFT_BOUNDS_MS[index]
            return low + (high - low) * (rank - below) / count
        below += count
    raise AssertionError("unreachable: the ranks add up to the total")


def ttft_bucket_of(ms: float) -> int:
    """The histogram bucket that holds `ms` (as the rollup files it)."""
    for index, bound in enumerate(TTFT_BOUNDS_MS):
        if ms < bound:
            return index
    return len(TTFT_BOUNDS_MS)


@dataclass
class Figures:
    """The rollup's columns summed over some rows (usage.models.AnalyticsTotals)."""

    served: int = 0
    served_browser: int = 0
    refused_429: int = 0
    refused_503: int = 0
    refused_other: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    weighted_tokens: int = 0
    ttft: list[int] = field(default_factory=lambda: [0] * len(TTFT_BUCKETS))

    @classmethod
    def of(cls, sums: Sequence[int]) -> Figures:
        """From sums in SUMMED order."""
        counts = len(COUNT_FIELDS)
        return cls(
            *(int(v) for v in sums[:counts]), ttft=[int(v) for v in sums[counts:]]
        )

    def merge(self, other: Figures) -> None:
        for name in COUNT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.ttft = [a + b for a, b in zip(self.ttft, other.ttft, strict=True)]

    @property
    def requests(self) -> int:
        return (
            self.served
            + self.refused_429
            + self.refused_503
            + self.refused_other
            + self.failed
        )

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def served_api(self) -> int:
        return self.served - self.served_browser

    def share(self, part: int) -> float | None:
        return part / self.requests if self.requests else None

    @property
    def share_429(self) -> float | None:
        return self.share(self.refused_429)

    @property
    def share_503(self) -> float | None:
        return self.share(self.refused_503)

    @property
    def pct_429(self) -> float | None:
        share = self.share_429
        return None if share is None else 100 * share

    @property
    def pct_503(self) -> float | None:
        share = self.share_503
        return None if share is None else 100 * share

    @property
    def short_of_capacity(self) -> bool:
        """503s (a full queue, a wait too long, no healthy backend) at or
        above REPLICA_503_SHARE: the page marks the model."""
        share = self.share_503
        return share is not None and share >= REPLICA_503_SHARE

    @property
    def ttft_count(self) -> int:
        return sum(self.ttft)

    @property
    def ttft_p50(self) -> float | None:
        return ttft_percentile(self.ttft, 0.50)

    @property
    def ttft_p95(self) -> float | None:
        return ttft_percentile(self.ttft, 0.95)

    @property
    def ttft_p95_open(self) -> bool:
        """The p95 lies in the open last bucket (a lower bound only)."""
        p95 = self.ttft_p95
        return p95 is not None and p95 >= TTFT_BOUNDS_MS[-1]


@dataclass
class Row:
    key: Any
    label: str
    figures: Figures = field(default_factory=Figures)
    note: str = ""
    children: list[Row] = field(default_factory=list)
