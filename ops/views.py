"""The operations dashboard: one admin page with the service's state, for staff
who hold `ops.view_dashboard` (it names users and their errors)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from apiproxy.ratelimit import rate_limiter
from ops.selectors import (
    dashboard_backends,
    dashboard_recent_errors,
    dashboard_slots,
    dashboard_top_users,
    dashboard_traffic,
)
from usage.buffer import usage_buffer

# Superusers hold every permission; other staff need this one (a 403 without).
DASHBOARD_PERMISSION = "ops.view_dashboard"


@permission_required(DASHBOARD_PERMISSION, raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    since = now - timedelta(hours=24)
    slots, slots_source = dashboard_slots()
    traffic = dashboard_traffic(now=now)
    context = {
        **admin.site.each_context(request),
        "title": "Operations dashboard",
        "backends": dashboard_backends(),
        "slots": slots,
        "slots_source": slots_source,
        "traffic": traffic,
        "traffic_peak": max((hour.tokens for hour in traffic), default=0) or 1,
        "totals": {
            "requests": sum(hour.requests for hour in traffic),
            "errors": sum(hour.errors for hour in traffic),
            "tokens": sum(hour.tokens for hour in traffic),
        },
        "top_users": dashboard_top_users(since=since),
        "recent_errors": dashboard_recent_errors(since=since),
        "buffer": usage_buffer.stats(),
        "limiter": rate_limiter.stats(),
    }
    return TemplateResponse(request, "admin/ops/dashboard.html", context)
