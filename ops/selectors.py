"""Reads for operations: readiness, and the staff dashboard's figures.

The dashboard reads usage records (the usage app's table, never changed
here), the catalog, and the concurrency slots in Redis, which every server
process shares. Queue depths exist only in each process's memory: the page
shows those of the process that serves it (Prometheus has every process's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncHour
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from apiproxy.queueing import board
from apiproxy.slots import slots_in_use
from catalog.models import AccessRequest, Backend, Deployment
from ops.models import BackendAlertState
from projects.models import AllocationRequest
from usage.models import UsageRecord

# Outcomes that are Portico's or a backend's fault even with status 200 (a
# stream that broke off after it began).
ERROR_REASONS = ("backend_error", "proxy_error")


def backend_health_counts() -> dict[str, int]:
    """Enabled and healthy backends, in one query (/readyz)."""
    return Backend.objects.filter(enabled=True).aggregate(
        enabled=Count("pk"), healthy=Count("pk", filter=Q(healthy=True))
    )


@dataclass(frozen=True)
class BackendRow:
    backend: Backend
    routes: int
    failed_checks: int
    reported_down: bool


@dataclass(frozen=True)
class SlotRow:
    model: str
    backend: str
    cap: int
    in_flight: int | None  # None: Redis did not answer
    waiting: int  # in this process


@dataclass(frozen=True)
class HourRow:
    hour: datetime
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def dashboard_backends() -> list[BackendRow]:
    live = Q(
        deployments__enabled=True,
        deployments__served=True,
        deployments__model__enabled=True,
    )
    backends = Backend.objects.annotate(routes=Count("deployments", filter=live))
    states = BackendAlertState.objects.in_bulk()
    rows = []
    for backend in backends.order_by("name"):
        state = states.get(backend.pk)
        rows.append(
            BackendRow(
                backend=backend,
                routes=backend.routes,
                failed_checks=state.failed_checks if state else 0,
                reported_down=state.reported_down if state else False,
            )
        )
    return rows


def dashboard_slots() -> tuple[list[SlotRow], str]:
    """Every live route with its slots in use and this process's queue."""
    routes = (
        Deployment.objects.filter(
            enabled=True, served=True, backend__enabled=True, model__enabled=True
        )
        .select_related("model", "backend")
        .order_by("model__public_id", "backend__name")
    )
    routes = list(routes)
    counts, source = slots_in_use([(r.backend_id, r.upstream_model) for r in routes])
    waiting = board.stats()
    rows = [
        SlotRow(
            model=route.model.public_id,
            backend=route.backend.name,
            cap=route.backend.max_concurrency,
            in_flight=count,
            waiting=waiting.get((route.backend_id, route.upstream_model), 0),
        )
        for route, count in zip(routes, counts, strict=True)
    ]
    return rows, source


def dashboard_traffic(*, now: datetime) -> list[HourRow]:
    """Requests, errors and tokens per hour over the last 24 hours (the
    current hour last), from the raw usage records."""
    current = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
    first = current - timedelta(hours=23)
    rows = (
        UsageRecord.objects.filter(started_at__gte=first)
        .annotate(hour=TruncHour("started_at"))
        .values("hour")
        .annotate(
            requests=Count("pk"),
            errors=Count(
                "pk", filter=Q(status__gte=400) | Q(finish_reason__in=ERROR_REASONS)
            ),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
        )
    )
    found = {row["hour"]: row for row in rows}
    hours = []
    for index in range(24):
        hour = first + timedelta(hours=index)
        row: dict[str, Any] = found.get(hour, {})
        hours.append(
            HourRow(
                hour=hour,
                requests=row.get("requests", 0),
                errors=row.get("errors", 0),
                prompt_tokens=row.get("prompt") or 0,
                completion_tokens=row.get("completion") or 0,
            )
        )
    return hours


def dashboard_top_users(*, since: datetime, limit: int = 10) -> list[dict[str, Any]]:
    """The heaviest users since `since`, by tokens."""
    return list(
        UsageRecord.objects.filter(started_at__gte=since, user__isnull=False)
        .values("user_id", "user__username")
        .annotate(
            requests=Count("pk"),
            tokens=Sum(F("prompt_tokens") + F("completion_tokens")),
        )
        .order_by("-tokens", "user__username")[:limit]
    )


def dashboard_recent_errors(*, since: datetime, limit: int = 20) -> list[UsageRecord]:
    return list(
        UsageRecord.objects.filter(started_at__gte=since)
        .filter(Q(status__gte=400) | Q(finish_reason__in=ERROR_REASONS))
        .select_related("user")
        .order_by("-started_at")[:limit]
    )


@dataclass(frozen=True)
class AttentionItem:
    """One thing staff should act on, with where to act on it."""

    text: str
    count: int
    url: str


def _item(count: int, one: str, many: str, url: str) -> AttentionItem:
    return AttentionItem(text=one if count == 1 else many, count=count, url=url)


def pending_decisions() -> list[AttentionItem]:
    """Requests and sign-ups waiting for a staff decision; only the non-empty
    kinds, so an admin index with nothing waiting shows nothing."""
    pending = "?state__exact=pending"
    counts = [
        (
            AccessRequest.objects.filter(state=AccessRequest.State.PENDING).count(),
            "access request waits",
            "access requests wait",
            reverse("admin:catalog_accessrequest_changelist") + pending,
        ),
        (
            AllocationRequest.objects.filter(
                state=AllocationRequest.State.PENDING
            ).count(),
            "allocation request waits",
            "allocation requests wait",
            reverse("admin:projects_allocationrequest_changelist") + pending,
        ),
        (
            User.objects.filter(pending_approval=True).count(),
            "new account waits for approval",
            "new accounts wait for approval",
            reverse("admin:accounts_user_changelist") + "?pending_approval__exact=1",
        ),
    ]
    return [_item(*row) for row in counts if row[0]]


def dashboard_attention(
    *,
    backends: list[BackendRow],
    slots: list[SlotRow],
    errors: int,
    flush_failures: int,
    limiter_degraded: bool,
) -> list[AttentionItem]:
    """What the dashboard leads with: backends down, errors, queues, this
    process's troubles and pending decisions, each only when there is any."""
    down = sum(1 for row in backends if row.backend.enabled and not row.backend.healthy)
    waiting = sum(row.waiting for row in slots)
    items = [
        _item(down, "backend is failing", "backends are failing", "#ops-backends"),
        _item(errors, "error in 24 hours", "errors in 24 hours", "#ops-errors"),
        _item(waiting, "request is queued", "requests are queued", "#ops-slots"),
        _item(
            flush_failures,
            "usage batch write failed",
            "usage batch writes failed",
            "#ops-process",
        ),
        _item(
            int(limiter_degraded),
            "process's rate limiter is degraded (Redis unreachable)",
            "",
            "#ops-process",
        ),
    ]
    return [item for item in items if item.count] + pending_decisions()
