"""A cheap per-user budget for refused requests.

A request refused before the rate limiter (a body that does not parse, an
unknown model, a prompt too long for the model) is parsed in full and metered,
yet never drew on the user's rate limits: a script could send them without
end. Each refusal counts here, in this process's memory (no round trip);
past REFUSALS_PER_MINUTE in the current minute the user's requests get 429
before their bodies are read. Requests that reached a backend never count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from apiproxy.errors import ProxyError

WINDOW_SECONDS = 60.0
MAX_USERS = 100_000
# Refusals of the request itself, not of the user's limits or of a backend.
COUNTED_STATUSES = frozenset({400, 404, 405, 408, 413, 415, 422, 501})


@dataclass(frozen=True, slots=True)
class RefusalStats:
    users: int  # users with refusals this minute
    throttled: int  # requests answered 429 for it since start


class RefusalBudget:
    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self._since = time.monotonic()
        self.throttled = 0

    def stats(self) -> RefusalStats:
        return RefusalStats(users=len(self._counts), throttled=self.throttled)

    def check(self, user_id: int) -> None:
        """Refuse at once (429) a user who used up this minute's budget."""
        self._roll()
        if self._counts.get(user_id, 0) < settings.REFUSALS_PER_MINUTE:
            return
        self.throttled += 1
        wait = max(1, int(self._since + WINDOW_SECONDS - time.monotonic()) + 1)
        raise ProxyError(
            429,
            f"Too many of your requests were refused in the last minute (bad "
            f"requests, unknown models, prompts too long). Fix them and try again "
            f"in {wait} s.",
            type="requests",
            code="too_many_refused_requests",
            headers=[(b"retry-after", str(wait).encode())],
            outcome="rate_limited",
        )

    def charge(self, user_id: int | None, status: int) -> None:
        if user_id is None or status not in COUNTED_STATUSES:
            return
        self._roll()
        if len(self._counts) >= MAX_USERS:
            self._counts.clear()
        self._counts[user_id] = self._counts.get(user_id, 0) + 1

    def _roll(self) -> None:
        now = time.monotonic()
        if now - self._since >= WINDOW_SECONDS:
            self._counts.clear()
            self._since = now


refusal_budget = RefusalBudget()
