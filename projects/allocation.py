"""Allocation enforcement for the proxy, from cached figures: no database
round trip per request (the model is usage.quota's).

Two figures decide, as for personal quotas:

- the terms: every project's allocation (AllocationTerms) and the set of
  (project, member) pairs, held in memory per process and reloaded off the
  request path every PROJECT_ALLOCATION_REFRESH_SECONDS (`allocations`): a changed
  allocation or end date is enforced by every process within that interval
  (plus one reload). A project or membership the copy does not know yet (one
  created a moment ago) makes the process reload at once, at most once a
  second. A removed member is stopped sooner by their keys' revocation;
- "used in the current window": one counter per project and allocation window
  (the whole period, or one month of it), and one per member and window, in
  Redis (or in this process without Redis). A counter is only ever created
  from the database's figure (the first request of the project, or member, in
  a window) and then raised by the usage flusher once per batch
  (`allocation_usage_add`, registered in projects.apps as a flush listener),
  never per chunk. The flusher adds to counters that exist only.

The request that crosses the allocation is served (its size is unknown until
it ends); the next one is refused. Counters lag the end of a request by at
most one flush interval (USAGE_FLUSH_SECONDS), so members working in parallel
overshoot by what their requests in flight meanwhile use. When Redis fails
the proxy admits (an allocation is a budget, not a security boundary) and logs.

The window figures come from raw usage records, which are kept
USAGE_RETENTION_DAYS: a counter seeded later than that into a long window
(a Redis restart, a whole-period window of more than 90 days) misses what
was pruned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime

import redis
from django.utils import timezone

from portal.dbthread import in_db_thread
from portal.redisconn import async_redis
from portal.refreshing import Refreshing
from projects.models import Project, ProjectMembership
from projects.selectors import project_terms, project_totals
from projects.windows import AllocationTerms, Window, window_at
from usage.metering import MeteredRow
from usage.quota import ADD_EXISTING as _ADD_EXISTING
from usage.quota import KEEP_AFTER_WINDOW, local_counters

logger = logging.getLogger(__name__)

KEY_PREFIX = "portico:alloc:"
# A project or membership the cached copy lacks reloads it, this often at most.
MISS_RELOAD_SECONDS = 1.0

# Refusal kinds (AllocationState.refusal).
NOT_MEMBER = "not_member"
UNKNOWN = "unknown"  # no such project (deleted)
NOT_STARTED = "not_started"
EXPIRED = "expired"
EXHAUSTED = "exhausted"
MEMBER_CAP = "member_cap"

# Raise counters to figures, never lower them; keep them until the expiry.
_RAISE_MANY = """
local values = {}
for i, key in ipairs(KEYS) do
  local current = tonumber(redis.call('GET', key) or '-1')
  local value = tonumber(ARGV[i + 1])
  if value > current then redis.call('SET', key, ARGV[i + 1]) end
  redis.call('EXPIRE', key, ARGV[1])
  values[i] = math.max(value, current)
end
return values
"""


@dataclass(frozen=True, slots=True)
class AllocationTable:
    """Every project's terms and memberships, as the proxy caches them."""

    projects: dict[int, AllocationTerms]
    members: frozenset[tuple[int, int]]  # (project_id, user_id)


def allocation_table() -> AllocationTable:
    """The loader (sync, in a worker thread): two queries."""
    projects = {
        project.pk: project_terms(project=project)
        for project in Project.objects.only(
            "pk",
            "name",
            "allocation_tokens",
            "starts_on",
            "ends_on",
            "monthly_instalments",
            "member_cap_tokens",
            "dedicated",
        )
    }
    members = frozenset(
        ProjectMembership.objects.filter(
            project__ends_on__gte=timezone.localdate()
        ).values_list("project_id", "user_id")
    )
    return AllocationTable(projects=projects, members=members)


allocations: Refreshing[AllocationTable] = Refreshing(
    load=allocation_table,
    empty=AllocationTable(projects={}, members=frozenset()),
    interval_setting="PROJECT_ALLOCATION_REFRESH_SECONDS",
    # Without a first copy the proxy answers 503 rather than guess who may
    # draw on which project.
)


def allocation_used(
    *, project_id: int, user_id: int, start: datetime, end: datetime
) -> tuple[int, int]:
    """Weighted tokens the project, and the member for it, used in
    [start, end), from the database (sync, via in_db_thread): the daily
    rollups plus the records not rolled up yet, as the project's pages count
    them, so a counter seeded after raw records were pruned still counts
    the whole window. Windows are whole local days."""
    per_member = project_totals(
        project_id=project_id,
        first_day=timezone.localdate(start),
        end_day=timezone.localdate(end),
        by=("user_id",),
    )
    project = sum(row.weighted_tokens for row in per_member.values())
    member = per_member.get((user_id,))
    return project, member.weighted_tokens if member is not None else 0


@dataclass(frozen=True, slots=True)
class AllocationState:
    """Where a project key stands; `refusal` is None when it may go ahead."""

    terms: AllocationTerms | None
    window: Window | None = None
    used: int = 0  # by the project in the window
    member_used: int = 0  # by this member in the window
    refusal: str | None = None

    @property
    def remaining(self) -> int | None:
        """Weighted tokens left to this member: the project's, less where the
        member cap leaves less. None when no figure is known."""
        if self.terms is None or self.window is None:
            return None
        left = max(0, self.window.limit - self.used)
        cap = self.terms.member_cap_tokens
        if cap is not None:
            left = min(left, max(0, cap - self.member_used))
        return left

    def headers(self) -> list[tuple[bytes, bytes]]:
        remaining = self.remaining
        if remaining is None:
            return []
        return [(b"x-portico-project-remaining-tokens", str(remaining).encode())]


def project_key(project_id: int, window: Window) -> str:
    return f"{KEY_PREFIX}{project_id}:{window.label}"


def member_key(project_id: int, window: Window, user_id: int) -> str:
    return f"{project_key(project_id, window)}:{user_id}"


def _ttl(window: Window, now: datetime) -> int:
    return max(60, int((window.end - now + KEEP_AFTER_WINDOW).total_seconds()))


async def _looked_up(
    project_id: int, user_id: int, now: datetime
) -> tuple[AllocationTerms | None, bool]:
    """The project's terms and whether the user is its member, from the cached
    table; reloaded now (at most once a second) when it lacks the project or,
    for a project within its dates, the membership: a project or member
    added a moment ago must not be refused."""
    table = await allocations.current()
    terms = table.projects.get(project_id)
    known = (project_id, user_id) in table.members
    stale = time.monotonic() - allocations.loaded_at >= MISS_RELOAD_SECONDS
    if stale and (terms is None or (not known and window_at(terms, now))):
        allocations.invalidate()
        table = await allocations.current()
        terms = table.projects.get(project_id)
        known = (project_id, user_id) in table.members
    return terms, known


async def _used(
    terms: AllocationTerms, user_id: int, window: Window
) -> tuple[int, int]:
    """(project, member) used in the window: one GET of both counters; the
    first request in a window starts the missing ones from the database."""
    keys = [project_key(terms.project_id, window)]
    keys.append(member_key(terms.project_id, window, user_id))
    client = async_redis()
    if client is None:
        values = [local_counters.get(key) for key in keys]
    else:
        values = await client.mget(keys)
    if None not in values:
        return int(values[0]), int(values[1])
    figures = await in_db_thread(
        allocation_used,
        project_id=terms.project_id,
        user_id=user_id,
        start=window.start,
        end=window.end,
    )
    ttl = _ttl(window, timezone.now())
    if client is None:
        raised = [
            local_counters.raise_to(k, f, ttl)
            for k, f in zip(keys, figures, strict=True)
        ]
    else:
        raised = await client.eval(_RAISE_MANY, len(keys), *keys, ttl, *figures)
    return int(raised[0]), int(raised[1])


def _outside(terms: AllocationTerms, now: datetime) -> str:
    return NOT_STARTED if timezone.localdate(now) < terms.starts_on else EXPIRED


async def allocation_check(
    *, project_id: int, user_id: int, model_weight: float
) -> AllocationState:
    """Where a project key of `user_id` stands now. Refusals, in order: no
    such project, outside the allocation's dates, no longer a member, the
    project's window used up, the member's cap used up (a model of weight 0
    costs nothing and is never refused for tokens)."""
    now = timezone.now()
    terms, member = await _looked_up(project_id, user_id, now)
    if terms is None:
        return AllocationState(terms=None, refusal=UNKNOWN)
    window = window_at(terms, now)
    if window is None:
        return AllocationState(terms=terms, refusal=_outside(terms, now))
    if not member:
        return AllocationState(terms=terms, refusal=NOT_MEMBER)
    try:
        used, member_used = await _used(terms, user_id, window)
    except Exception:
        logger.warning("allocation figure unavailable; admitting", exc_info=True)
        return AllocationState(terms=terms)
    state = AllocationState(
        terms=terms, window=window, used=used, member_used=member_used
    )
    if model_weight <= 0:
        return state
    if used >= window.limit:
        return replace(state, refusal=EXHAUSTED)
    cap = terms.member_cap_tokens
    if cap is not None and member_used >= cap:
        return replace(state, refusal=MEMBER_CAP)
    return state


def _increments(
    rows: Iterable[MeteredRow], projects: dict[int, AllocationTerms]
) -> dict[str, int]:
    """Counter key -> weighted tokens for the rows that billed a project."""
    found: dict[str, int] = {}
    # A batch's rows nearly all fall on one local day: windows are worked out
    # once per project and day, not once per row.
    windows: dict[tuple[int, date], Window | None] = {}
    for row in rows:
        if row.project_id is None or not row.weighted_tokens:
            continue
        terms = projects.get(row.project_id)
        if terms is None:
            continue
        day = timezone.localdate(row.started_at)
        if (row.project_id, day) not in windows:
            windows[row.project_id, day] = window_at(terms, row.started_at)
        window = windows[row.project_id, day]
        if window is None:
            continue
        for key in (
            project_key(row.project_id, window),
            member_key(row.project_id, window, row.user_id),
        ):
            found[key] = found.get(key, 0) + row.weighted_tokens
    return found


async def allocation_usage_add(*, rows: Iterable[MeteredRow]) -> None:
    """The usage flusher's listener: raise the existing project and member
    counters by the rows' weighted tokens (one Redis round trip per batch)."""
    rows = list(rows)
    if not any(row.project_id is not None for row in rows):
        return
    table = await allocations.current()
    found = _increments(rows, table.projects)
    if not found:
        return
    client = async_redis()
    if client is None:
        local_counters.add_existing(found)
        return
    keys = list(found)
    try:
        await client.eval(_ADD_EXISTING, len(keys), *keys, *(found[k] for k in keys))
    except (redis.RedisError, OSError):
        logger.warning("could not add usage to the allocation counters", exc_info=True)


async def project_grants_dedicated(*, project_id: int, user_id: int) -> bool:
    """Whether a running project that the user belongs to gives its keys the
    dedicated service class (a cached answer: no query)."""
    table = await allocations.current()
    terms = table.projects.get(project_id)
    if terms is None or not terms.dedicated:
        return False
    if (project_id, user_id) not in table.members:
        return False
    return window_at(terms, timezone.now()) is not None
