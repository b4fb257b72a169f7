"""Step 5, route: pick the backend for a model.

Least in-flight first among healthy routes; a backend that refused a connection
is skipped for a short cool-down and tried again after it, so it rejoins as soon
as it answers. In-flight counts are per process: with several processes each
balances its own share, which evens out across processes.
"""

from __future__ import annotations

import time
from collections import defaultdict

from catalog.access import routes_for_class
from catalog.snapshot import CatalogModel, Route

REFUSED_COOLDOWN_SECONDS = 5.0


class RoutePicker:
    def __init__(self) -> None:
        self.in_flight: defaultdict[tuple[int, str], int] = defaultdict(int)
        self.refused_until: dict[int, float] = {}

    def choose(self, model: CatalogModel, *, dedicated: bool = False) -> Route | None:
        """The route for the next request. Members of the dedicated class go
        to dedicated backends where the model has healthy ones; everyone
        else stays on the shared pool (the dedicated pool is reserved)."""
        now = time.monotonic()
        routes = routes_for_class(model.routes, dedicated=dedicated)
        candidates = [route for route in routes if route.healthy] or list(routes)
        if not candidates:
            return None
        available = [
            route
            for route in candidates
            if self.refused_until.get(route.backend_id, 0.0) <= now
        ]
        if not available:
            # All refused recently: try the one whose cool-down ends first
            # rather than failing without asking anyone.
            return min(candidates, key=lambda r: self.refused_until[r.backend_id])
        return min(
            available,
            key=lambda route: self.in_flight[(route.backend_id, route.upstream_model)],
        )

    def stats(self) -> dict[tuple[int, str], int]:
        """Requests this process has assigned, per (backend id, upstream model)."""
        return dict(self.in_flight)

    def acquire(self, route: Route) -> None:
        self.in_flight[(route.backend_id, route.upstream_model)] += 1

    def release(self, route: Route) -> None:
        key = (route.backend_id, route.upstream_model)
        self.in_flight[key] -= 1
        if self.in_flight[key] <= 0:
            del self.in_flight[key]

    def mark_refused(self, route: Route) -> None:
        self.refused_until[route.backend_id] = (
            time.monotonic() + REFUSED_COOLDOWN_SECONDS
        )

    def mark_answered(self, route: Route) -> None:
        self.refused_until.pop(route.backend_id, None)


picker = RoutePicker()
