"""Step 5, route: pick the backend for a model.

Least in-flight first among healthy routes; a backend that refused a connection
is skipped for a short cool-down and tried again after it, so it rejoins as soon
as it answers. In-flight counts are per process: with several processes each
balances its own share, which evens out across processes.

Backends that load models on demand (Ollama: `route.loaded` is not None) get
one more rule, because a model switch costs seconds and may evict a model other
users are working with (ROUTING_PREFER_LOADED, on by default). Among healthy,
available routes, in this order:

1. a route whose backend holds the model and has a free slot for it (least in
   flight among those);
2. else a route whose backend has nothing in flight: loading the model there
   evicts no one who is waiting for an answer;
3. else least in flight, where a route that would load counts everything in
   flight on its backend (all of it waits for the load, then loses its model).

What "holds" means: the health check's view (Ollama's /api/ps, in the catalog
snapshot) unless this process knows better. After it sends a request for model
M to backend B, B holds M (or is loading it); a request sent to a model B was
not believed to hold is a load, which may have evicted every other model on B
(Ollama with big models on one GPU holds one), so models seen on B before that
load count as gone until they are served again, and the snapshot's word about B
is not trusted until a health check has certainly run since. A model served on
B counts as held for SEEN_LOADED_SECONDS after its last request (Ollama unloads
idle models after 5 minutes by default). All of this is a few dict look-ups in
this process's memory: no I/O, no locks (one event loop per process).

Load times: the time to first token of the request that made a backend load
(for a non-streamed answer: to the whole answer, an upper bound) includes the
load, and is the figure kept. The proxy must not write the database per
request, so the figure goes to Redis, one HSET per load (rare: loads are what
this module avoids), and the health check copies it into
Deployment.load_seconds, from where /v1/models and the chat's model picker read
it (catalog.loadtimes).
"""

from __future__ import annotations

import time
from collections import defaultdict

from django.conf import settings

from catalog.access import routes_for_class
from catalog.loadtimes import load_seconds_note
from catalog.snapshot import CatalogModel, Route

REFUSED_COOLDOWN_SECONDS = 5.0
# How long a model served on a backend counts as held there after its last
# request: a little under Ollama's default keep_alive (5 minutes).
SEEN_LOADED_SECONDS = 240.0

Key = tuple[int, str]  # (backend id, upstream model)


class RoutePicker:
    def __init__(self) -> None:
        self.in_flight: defaultdict[Key, int] = defaultdict(int)
        self.refused_until: dict[int, float] = {}
        # Backends that load on demand only (route.loaded is not None):
        self.busy: dict[int, int] = {}  # requests in flight per backend
        self.seen_at: dict[Key, float] = {}  # last sent or finished here
        self.switched_at: dict[int, float] = {}  # the last load this process made
        self.loading: dict[Key, float] = {}  # loads whose time is not measured yet

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
        for route in available:
            if route.loaded is not None:  # a backend that loads on demand
                if settings.ROUTING_PREFER_LOADED:
                    return self._choose_loaded(available, now)
                break
        return min(
            available,
            key=lambda route: self.in_flight[(route.backend_id, route.upstream_model)],
        )

    def _choose_loaded(self, routes: list[Route], now: float) -> Route:
        """The three rules of the module docstring, in one pass."""
        held: Route | None = None
        held_count = 0
        idle: Route | None = None
        fallback = routes[0]
        fallback_weight: int | None = None
        for route in routes:
            count = self.in_flight.get((route.backend_id, route.upstream_model), 0)
            if self.believed_loaded(route, now):
                if count < route.max_concurrency and (
                    held is None or count < held_count
                ):
                    held, held_count = route, count
                weight = count
            else:
                weight = self.busy.get(route.backend_id, 0)
                if weight == 0 and idle is None:
                    idle = route
            if fallback_weight is None or weight < fallback_weight:
                fallback, fallback_weight = route, weight
        return held or idle or fallback

    def believed_loaded(self, route: Route, now: float) -> bool:
        """Whether route's backend holds its model, as far as this process
        knows (see the module docstring). Always for backends that do not
        load on demand."""
        if route.loaded is None:
            return True
        key = (route.backend_id, route.upstream_model)
        switched = self.switched_at.get(route.backend_id)
        seen = self.seen_at.get(key)
        if seen is not None and (switched is None or seen >= switched):
            if now - seen < SEEN_LOADED_SECONDS or self.in_flight.get(key):
                return True
        if not route.loaded:
            return False
        # The snapshot's word, unless this process loaded something there
        # after the check it may come from.
        return switched is None or now - switched > _snapshot_lag()

    def stats(self) -> dict[Key, int]:
        """Requests this process has assigned, per (backend id, upstream model)."""
        return dict(self.in_flight)

    def acquire(self, route: Route) -> None:
        key = (route.backend_id, route.upstream_model)
        self.in_flight[key] += 1
        if route.loaded is None:
            return
        now = time.monotonic()
        if not self.believed_loaded(route, now):
            self.switched_at[route.backend_id] = now
            self.loading[key] = now
        self.seen_at[key] = now
        self.busy[route.backend_id] = self.busy.get(route.backend_id, 0) + 1

    def release(self, route: Route) -> None:
        key = (route.backend_id, route.upstream_model)
        self.in_flight[key] -= 1
        if self.in_flight[key] <= 0:
            del self.in_flight[key]
        if route.loaded is None:
            return
        backend = route.backend_id
        self.busy[backend] = self.busy.get(backend, 0) - 1
        if self.busy[backend] <= 0:
            del self.busy[backend]
        # A load whose first token never came is not measured by a later,
        # warm request.
        self.loading.pop(key, None)
        if self.seen_at.get(key, 0.0) >= self.switched_at.get(backend, 0.0):
            self.seen_at[key] = time.monotonic()  # still held: idle from now

    def load_measured(
        self, route: Route, *, sent_at: float, first_token_at: float | None
    ) -> float | None:
        """Seconds the load this request waited for took, once per load: the
        time from sending it to its first token. None when it made no load."""
        if not self.loading or route.loaded is None or first_token_at is None:
            return None
        if self.loading.pop((route.backend_id, route.upstream_model), None) is None:
            return None
        return max(first_token_at - sent_at, 0.0)

    def mark_refused(self, route: Route) -> None:
        self.refused_until[route.backend_id] = (
            time.monotonic() + REFUSED_COOLDOWN_SECONDS
        )

    def mark_answered(self, route: Route) -> None:
        self.refused_until.pop(route.backend_id, None)

    def forget(self) -> None:
        """Back to knowing nothing (tests, the benchmark between runs)."""
        self.__init__()  # type: ignore[misc]


def _snapshot_lag() -> float:
    """How long after a load the catalog may still show an older /api/ps: up
    to a check interval until the next check, its answer, the cache refresh."""
    return (
        settings.BACKEND_CHECK_INTERVAL_SECONDS
        + settings.MODEL_DISCOVERY_TIMEOUT_SECONDS
        + settings.CATALOG_REFRESH_SECONDS
    )


async def load_observed(
    route: Route, *, sent_at: float, first_token_at: float | None
) -> None:
    """After an answer: keep the load time if this request made a load (one
    Redis round trip then; nothing otherwise)."""
    seconds = picker.load_measured(
        route, sent_at=sent_at, first_token_at=first_token_at
    )
    if seconds is not None:
        await load_seconds_note(
            backend_id=route.backend_id,
            upstream_model=route.upstream_model,
            seconds=seconds,
        )


picker = RoutePicker()
