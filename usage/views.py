"""Settings > Usage: a researcher's own usage, quota and CSV export."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from usage.exports import usage_csv_write
from usage.forms import UsageRangeForm
from usage.reports import usage_overview
from usage.selectors import usage_export_rows


@login_required
@never_cache
def settings_usage(request: HttpRequest) -> HttpResponse:
    form = UsageRangeForm(request.GET)
    first_day, end_day = form.days() or (None, None)
    overview = usage_overview(
        user=request.user,  # type: ignore[arg-type]
        now=timezone.now(),
        first_day=first_day,
        end_day=end_day,
    )
    context = {"overview": overview, "range_form": form}
    return render(request, "usage/settings_usage.html", context)


@login_required
@never_cache
def settings_usage_export(request: HttpRequest) -> HttpResponse:
    """Every record of the user's still kept (USAGE_RETENTION_DAYS), as the
    `exportusage --format csv` command writes them."""
    name = f"usage-{request.user.get_username()}-{timezone.localdate():%Y%m%d}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    usage_csv_write(usage_export_rows(user=request.user), response)
    return response
