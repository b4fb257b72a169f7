"""Allocation requests in admin: staff set what they grant (tokens, dates,
service class), then approve or refuse with an action; the services do the
rest (project made or topped up, history kept, requester told)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from projects.allocation_requests import allocation_request_decide
from projects.models import AllocationRequest


@admin.register(AllocationRequest)
class AllocationRequestAdmin(admin.ModelAdmin):
    list_display = ("__str__", "state", "tokens", "ends_on", "created_at", "decided_by")
    list_filter = ("state",)
    search_fields = ("requester__username", "name", "project__name")
    readonly_fields = (
        "requester",
        "project",
        "name",
        "tokens",
        "ends_on",
        "justification",
        "state",
        "decided_by",
        "decided_at",
        "created_at",
    )
    fields = (
        *readonly_fields,
        "granted_tokens",
        "granted_starts_on",
        "granted_ends_on",
        "granted_dedicated",
        "staff_note",
    )
    actions = ["approve", "refuse"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # researchers ask on Settings > Projects

    def _decide(
        self, request: HttpRequest, queryset: QuerySet[Any], *, approve: bool
    ) -> None:
        decided = 0
        for item in queryset.filter(state=AllocationRequest.State.PENDING):
            allocation_request_decide(request=item, approve=approve, staff=request.user)
            decided += 1
        verdict = "approved" if approve else "refused"
        self.message_user(request, f"{decided} request(s) {verdict}.", messages.SUCCESS)

    @admin.action(description="Approve with the granted amounts (else as asked)")
    def approve(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Refuse")
    def refuse(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._decide(request, queryset, approve=False)
