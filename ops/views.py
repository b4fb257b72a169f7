"""The operations dashboard: one admin page with the service's state, and the
staff analytics (usage over any range of days), for staff who hold
`ops.view_dashboard` (they name users, projects and their errors)."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from apiproxy.ratelimit import rate_limiter
from ops.analytics import BREAKDOWNS, analytics_read
from ops.selectors import (
    dashboard_attention,
    dashboard_backends,
    dashboard_recent_errors,
    dashboard_slots,
    dashboard_top_users,
    dashboard_traffic,
)
from ops.usagefigures import REPLICA_503_SHARE
from usage.buffer import usage_buffer

# Superusers hold every permission; other staff need this one (a 403 without).
DASHBOARD_PERMISSION = "ops.view_dashboard"


@permission_required(DASHBOARD_PERMISSION, raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    since = now - timedelta(hours=24)
    slots, slots_source = dashboard_slots()
    traffic = dashboard_traffic(now=now)
    backends = dashboard_backends()
    errors = sum(hour.errors for hour in traffic)
    buffer, limiter = usage_buffer.stats(), rate_limiter.stats()
    context = {
        **admin.site.each_context(request),
        "title": "Operations dashboard",
        "attention": dashboard_attention(
            backends=backends,
            slots=slots,
            errors=errors,
            flush_failures=buffer.flush_failures,
            limiter_degraded=limiter.degraded,
        ),
        "backends": backends,
        "slots": slots,
        "slots_source": slots_source,
        "traffic": traffic,
        "traffic_peak": max((hour.tokens for hour in traffic), default=0) or 1,
        "totals": {
            "requests": sum(hour.requests for hour in traffic),
            "errors": errors,
            "tokens": sum(hour.tokens for hour in traffic),
        },
        "top_users": dashboard_top_users(since=since),
        "recent_errors": dashboard_recent_errors(since=since),
        "buffer": buffer,
        "limiter": limiter,
    }
    return TemplateResponse(request, "admin/ops/dashboard.html", context)


ANALYTICS_DEFAULT_DAYS = 30


class AnalyticsForm(forms.Form):
    """The range (local days, both included) and the breakdown; GET, so a
    view can be bookmarked."""

    since = forms.DateField(
        label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(label="to", widget=forms.DateInput(attrs={"type": "date"}))
    by = forms.ChoiceField(label="by", choices=list(BREAKDOWNS.items()))

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The range ends before it starts.")
        return cleaned


@permission_required(DASHBOARD_PERMISSION, raise_exception=True)
def analytics(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    initial = {
        "since": str(today - timedelta(days=ANALYTICS_DEFAULT_DAYS - 1)),
        "until": str(today),
        "by": "project",
    }
    form = AnalyticsForm({**initial, **request.GET.dict()})
    figures = None
    if form.is_valid():
        figures = analytics_read(
            since=form.cleaned_data["since"],
            until=form.cleaned_data["until"],
            by=form.cleaned_data["by"],
        )
    context = {
        **admin.site.each_context(request),
        "title": "Usage analytics",
        "form": form,
        "analytics": figures,
        "breakdown": BREAKDOWNS.get(form.data.get("by", ""), ""),
        "replica_503_pct": f"{100 * REPLICA_503_SHARE:g}",
    }
    return TemplateResponse(
        request, "admin/ops/analytics.html", context, status=200 if figures else 400
    )
