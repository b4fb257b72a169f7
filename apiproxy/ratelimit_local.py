"""The rate limiter's budgets, and the same algorithm in process memory: used
without Redis, and while Redis is down (then with limits divided among the
processes). apiproxy.ratelimit runs it in Redis."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW_MS = 60_000


@dataclass(frozen=True, slots=True)
class Bucket:
    """One budget a request draws on: `name` like "user:7" or "key:12"."""

    name: str
    rpm: int  # 0: unlimited
    tpm: int  # 0: unlimited


@dataclass
class _LocalBucket:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    # The sum of `tokens`, kept as entries come and go: O(1) per admission
    # however busy the minute was.
    tokens_used: int = 0

    def tokens_add(self, at: float, amount: int) -> None:
        self.tokens.append((at, amount))
        self.tokens_used += amount


class LocalLimiter:
    """The same algorithm in process memory: used without Redis, and while
    Redis is down (then with limits divided among the processes)."""

    def __init__(self) -> None:
        self.buckets: dict[str, _LocalBucket] = {}

    def _bucket(self, name: str, now: float) -> _LocalBucket:
        bucket = self.buckets.setdefault(name, _LocalBucket())
        horizon = now - WINDOW_MS
        while bucket.requests and bucket.requests[0] <= horizon:
            bucket.requests.popleft()
        while bucket.tokens and bucket.tokens[0][0] <= horizon:
            bucket.tokens_used -= bucket.tokens.popleft()[1]
        return bucket

    def admit(
        self, buckets: list[Bucket], costs: list[int], now: float
    ) -> tuple[bool, int, list[int]]:
        denied, retry, figures = False, 0, []
        for spec, cost in zip(buckets, costs, strict=True):
            bucket = self._bucket(spec.name, now)
            count = len(bucket.requests)
            used = bucket.tokens_used
            reset_req = int(bucket.requests[0] + WINDOW_MS - now) if count else 0
            reset_tok = (
                int(bucket.tokens[0][0] + WINDOW_MS - now) if bucket.tokens else 0
            )
            if spec.rpm and count >= spec.rpm:
                denied, retry = True, max(retry, reset_req)
            if spec.tpm and used and used + cost > spec.tpm:
                denied, retry = True, max(retry, reset_tok)
            figures += [count, reset_req, used, reset_tok]
        if not denied:
            for spec, cost in zip(buckets, costs, strict=True):
                bucket = self.buckets[spec.name]
                bucket.requests.append(now)
                if cost:
                    bucket.tokens_add(now, cost)
        return denied, retry, figures

    def charge(self, names: list[str], tokens: int, now: float) -> None:
        for name in names:
            self._bucket(name, now).tokens_add(now, tokens)
