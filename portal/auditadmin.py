"""The audit log in admin: read, filter and export it as CSV (staff only).

auditlog registers its own LogEntry admin; `logentry_admin_install` replaces it
with this one at start-up. Who may read the log may export it: both need the
view permission on log entries (`auditlog.view_logentry`), which superusers
hold and other staff get through a group. Nothing in the log is a secret (the
apps' audit registrations mask or leave out secret fields), so the export
writes the entries as they are, through portal.csvsafe (no cell runs as a
spreadsheet formula).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

from auditlog.admin import LogEntryAdmin
from auditlog.filters import CIDFilter, ResourceTypeFilter
from auditlog.models import LogEntry
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template import engines
from django.urls import URLPattern, path
from django.utils import timezone

from portal.csvsafe import CsvWriter

EXPORT_COLUMNS = [
    "timestamp",
    "action",
    "model",
    "object_id",
    "object",
    "actor",
    "remote_addr",
    "correlation_id",
    "changes",
]

# The changelist with an "Export CSV" button that carries the current filters.
_CHANGE_LIST_SOURCE = """{% extends "admin/change_list.html" %}
{% block object-tools-items %}
<li><a href="{% url 'admin:auditlog_logentry_export' %}{{ cl.get_query_string }}"
   class="viewlink">Export CSV</a></li>
{{ block.super }}
{% endblock %}
"""


def logentry_actor_label(entry: LogEntry) -> str:
    """The user's name; else what made the change without a user (a command
    records itself in actor_email); else "system", as auditlog's admin says."""
    if entry.actor_id is not None and entry.actor is not None:
        return entry.actor.get_username()
    return entry.actor_email or "system"


def logentry_csv_rows(entries: Iterable[LogEntry]) -> Iterator[list[object]]:
    yield list(EXPORT_COLUMNS)
    for entry in entries:
        content_type = entry.content_type
        changes = entry.changes_dict
        yield [
            timezone.localtime(entry.timestamp).isoformat(),
            entry.get_action_display(),
            f"{content_type.app_label}.{content_type.model}",
            entry.object_pk,
            entry.object_repr,
            logentry_actor_label(entry),
            entry.remote_addr,
            entry.cid,
            json.dumps(changes, sort_keys=True, ensure_ascii=False) if changes else "",
        ]


def logentry_csv_response(queryset: QuerySet[LogEntry]) -> HttpResponse:
    """The entries, oldest first, as a CSV download."""
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-log-{stamp}.csv"'
    entries = (
        queryset.select_related("content_type", "actor")
        .order_by("timestamp", "pk")
        .iterator(chunk_size=2000)
    )
    writer = CsvWriter(response)
    for row in logentry_csv_rows(entries):
        writer.writerow(row)
    return response


@cache
def _change_list_template() -> Any:
    # Built on first use, not at import: the template engines read settings.
    return engines["django"].from_string(_CHANGE_LIST_SOURCE)


class AuditLogEntryAdmin(LogEntryAdmin):
    """auditlog's read-only LogEntry admin, plus the address, filters by actor
    and date, and the CSV export (an action, and a button for the filtered
    list)."""

    list_display = [
        "created",
        "resource_url",
        "action",
        "msg_short",
        "actor_label",
        "remote_addr",
        "cid_url",
    ]
    list_filter = [
        "action",
        ResourceTypeFilter,
        ("actor", admin.RelatedOnlyFieldListFilter),
        ("timestamp", admin.DateFieldListFilter),
        CIDFilter,
    ]
    search_fields = [*LogEntryAdmin.search_fields, "actor_email", "remote_addr"]
    readonly_fields = [*LogEntryAdmin.readonly_fields, "actor_label"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "created",
                    "actor_label",
                    "remote_addr",
                    "resource_url",
                    "cid",
                ]
            },
        ),
        ("Changes", {"fields": ["action", "msg"]}),
    ]
    actions = ["export_csv"]

    @property
    def change_list_template(self) -> Any:  # type: ignore[override]
        return _change_list_template()

    def get_urls(self) -> list[URLPattern]:
        export = path(
            "export/",
            self.admin_site.admin_view(self.export_view),
            name="auditlog_logentry_export",
        )
        return [export, *super().get_urls()]

    @admin.display(description="actor")
    def actor_label(self, entry: LogEntry) -> str:
        return logentry_actor_label(entry)

    @admin.action(description="Export selected entries as CSV", permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[LogEntry]
    ) -> HttpResponse:
        return logentry_csv_response(queryset)

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The changelist as filtered (model, actor, date, search), as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("Unknown filter.")
        return logentry_csv_response(changelist.queryset)


def logentry_admin_install(site: admin.AdminSite | None = None) -> None:
    """Put AuditLogEntryAdmin in place of auditlog's admin. Idempotent; runs
    after admin autodiscovery (an AppConfig.ready() of an app listed after
    django.contrib.admin)."""
    site = site or admin.site
    if site.is_registered(LogEntry):
        site.unregister(LogEntry)
    site.register(LogEntry, AuditLogEntryAdmin)
