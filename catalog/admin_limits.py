"""Admin for rate limits, service classes and access requests.

Group limits sit inline on the Group page (a group is a class when it holds
dedicated access); user and key overrides have their own lists.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.urls import URLPattern, path

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
    # Most groups are service classes: their limits (the inline) matter, and
    # the long permission picker, for staff groups only, starts folded away.
    fieldsets = [
        (None, {"fields": ["name"]}),
        (
            "Admin permissions (staff groups only)",
            {"classes": ["collapse"], "fields": ["permissions"]},
        ),
    ]
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
    # Approve and Refuse buttons beside Save (they post the form, staff note
    # included, to decide_view).
    change_form_template = "admin/catalog/accessrequest/change_form.html"

    def get_urls(self) -> list[URLPattern]:
        decide = path(
            "<int:object_id>/decide/",
            self.admin_site.admin_view(self.decide_view),
            name="catalog_accessrequest_decide",
        )
        return [decide, *super().get_urls()]

    def decide_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        access_request = get_object_or_404(AccessRequest, pk=object_id)
        decision = request.POST.get("decision")
        if decision not in ("approve", "refuse"):
            self.message_user(request, "Choose Approve or Refuse.", messages.ERROR)
            return redirect("admin:catalog_accessrequest_change", object_id)
        was_pending = access_request.state == AccessRequest.State.PENDING
        decided = access_request_decide(
            request=access_request,
            approve=decision == "approve",
            staff=request.user,
            note=request.POST.get("staff_note", "").strip(),
        )
        if was_pending:
            text = (
                f"{decided.get_state_display()}: {decided.user}'s request for"
                f" {decided.group} (the user is told by e-mail)."
            )
            self.message_user(request, text, messages.SUCCESS)
        else:
            text = f"Already decided: {decided.get_state_display().lower()}."
            self.message_user(request, text, messages.WARNING)
        return redirect("admin:catalog_accessrequest_change", object_id)

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
