"""The operator's console for usage: the report (by user, group or model over
a chosen period, with totals and CSV), quotas, and the raw records."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from portal.csvsafe import CsvWriter
from usage.models import Quota, RollupState, UsageRecord, UsageReport
from usage.reports import Report, usage_report


class QuotaForm(forms.ModelForm):
    class Meta:
        model = Quota
        fields = ["user", "group", "tokens", "period"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if bool(data.get("user")) == bool(data.get("group")):
            raise ValidationError("Choose a user (an override) or a group, not both.")
        return data


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    form = QuotaForm
    list_display = ["holder", "tokens", "period", "updated_at"]
    list_editable = ["tokens", "period"]
    list_filter = ["period"]
    search_fields = ["user__username", "group__name"]
    autocomplete_fields = ["user", "group"]

    @admin.display(description="user or group")
    def holder(self, quota: Quota) -> str:
        if quota.user_id:
            return f"user {quota.user}"
        return f"group {quota.group} (members' default)"


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """Read-only: records are written by the meter only."""

    list_display = [
        "started_at",
        "user",
        "model",
        "endpoint",
        "client",
        "prompt_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "usage_source",
        "status",
        "finish_reason",
    ]
    list_filter = ["client", "usage_source", "endpoint", "finish_reason"]
    search_fields = ["request_id", "user__username", "model"]
    date_hierarchy = "started_at"
    list_select_related = ["user"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReportForm(forms.Form):
    since = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}), help_text="inclusive"
    )
    by = forms.ChoiceField(
        choices=[("user", "user"), ("group", "group"), ("model", "model")]
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("since") and data.get("until") and data["until"] < data["since"]:
            raise ValidationError("The period ends before it starts.")
        return data


def report_csv(report: Report) -> HttpResponse:
    """The report as CSV; its labels (model strings, names) are escaped by
    CsvWriter, since clients choose model strings."""
    name = f"usage-by-{report.by}-{report.first_day:%Y%m%d}-{report.end_day:%Y%m%d}"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    writer = CsvWriter(response)
    columns = ["requests", "errors", "prompt_tokens", "completion_tokens"]
    writer.writerow([report.by, *columns, "weighted_tokens"])
    for line in [*report.lines, None]:
        label, totals = (
            ("TOTAL", report.total) if line is None else (line.label, line.totals)
        )
        writer.writerow(
            [label, *(getattr(totals, c) for c in columns), totals.weighted_tokens]
        )
    return response


@admin.register(UsageReport)
class UsageReportAdmin(admin.ModelAdmin):
    """Its list is the report: usage by user, group or model over chosen days."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        form = ReportForm(
            request.GET or None,
            initial={"since": today.replace(day=1), "until": today, "by": "user"},
        )
        report = None
        if form.is_bound and form.is_valid():
            since, until = form.cleaned_data["since"], form.cleaned_data["until"]
            by = form.cleaned_data["by"]
        elif not form.is_bound:
            since, until, by = today.replace(day=1), today, "user"
        else:
            since = until = None
        if since is not None and until is not None:
            report = usage_report(
                first_day=since, end_day=until + timedelta(days=1), by=by
            )
            if request.GET.get("format") == "csv":
                return report_csv(report)
        context = {
            **self.admin_site.each_context(request),
            "title": "Usage report",
            "opts": self.model._meta,
            "form": form,
            "report": report,
            "state": RollupState.objects.filter(name="usage").first(),
            "csv_query": _with_csv(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/usage/report.html", context)


def _with_csv(request: HttpRequest) -> str:
    query = request.GET.copy()
    query["format"] = "csv"
    return query.urlencode()
