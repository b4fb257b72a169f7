"""Admin for rate limits, service classes and access requests.

Group limits sit inline on the Group page (a group is a class when it holds
dedicated access); user and key overrides have their own lists.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest

from catalog.access_requests import access_request_decide
from catalog.models import AccessRequest, GroupLimits, KeyLimits, UserLimits


class GroupLimitsInline(admin.StackedInline):
    model = GroupLimits
    can_delete = False
    fields = ["rpm", "tpm", "dedicated_access", "requestable", "description"]


admin.site.unregister(Group)


@admin.register(Group)
class PorticoGroupAdmin(GroupAdmin):
    inlines = [GroupLimitsInline]
    list_display = ["name", "rpm", "tpm", "dedicated", "members"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Group]:
        return super().get_queryset(request).select_related("portico_limits")

    def _limits(self, group: Group) -> GroupLimits | None:
        return getattr(group, "portico_limits", None)

    @admin.display(description="requests/min")
    def rpm(self, group: Group) -> object:
        limits = self._limits(group)
        return limits.rpm if limits and limits.rpm is not None else "default"

    @admin.display(description="tokens/min")
    def tpm(self, group: Group) -> object:
        limits = self._limits(group)
        return limits.tpm if limits and limits.tpm is not None else "default"

    @admin.display(boolean=True, description="dedicated class")
    def dedicated(self, group: Group) -> bool:
        limits = self._limits(group)
        return bool(limits and limits.dedicated_access)

    @admin.display(description="members")
    def members(self, group: Group) -> int:
        return group.user_set.count()


@admin.register(UserLimits)
class UserLimitsAdmin(admin.ModelAdmin):
    list_display = ["user", "rpm", "tpm"]
    search_fields = ["user__username", "user__email"]
    autocomplete_fields = ["user"]


@admin.register(KeyLimits)
class KeyLimitsAdmin(admin.ModelAdmin):
    list_display = ["key", "rpm", "tpm"]
    search_fields = ["key__name", "key__lookup_id", "key__user__username"]
    raw_id_fields = ["key"]


@admin.register(AccessRequest)
class AccessRequestAdmin(admin.ModelAdmin):
    list_display = ["user", "group", "state", "created_at", "decided_by"]
    list_filter = ["state", "group"]
    search_fields = ["user__username", "user__email", "use_case"]
    readonly_fields = [
        "user",
        "group",
        "use_case",
        "models_wanted",
        "expected_volume",
        "state",
        "decided_by",
        "decided_at",
        "created_at",
    ]
    fields = [*readonly_fields[:5], "staff_note", *readonly_fields[5:]]
    actions = ["approve", "refuse"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def _decide(
        self, request: HttpRequest, queryset: QuerySet[AccessRequest], approve: bool
    ) -> None:
        decided = 0
        for access_request in queryset.filter(state=AccessRequest.State.PENDING):
            access_request_decide(
                request=access_request, approve=approve, staff=request.user
            )
            decided += 1
        verb = "Approved" if approve else "Refused"
        self.message_user(request, f"{verb} {decided} request(s).", messages.SUCCESS)

    @admin.action(description="Approve selected requests (and e-mail the users)")
    def approve(self, request: HttpRequest, queryset: QuerySet[AccessRequest]) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Refuse selected requests (and e-mail the users)")
    def refuse(self, request: HttpRequest, queryset: QuerySet[AccessRequest]) -> None:
        self._decide(request, queryset, approve=False)
