"""The operator's console for projects: grants, members and the allocation
history.

Writes go through projects.services, as the commands' do: a project added
here is made by `project_create` (its PI becomes its first member, the grant
enters the history), a change to its terms by `allocation_set` (kept in the
history with the staff member who made it), and a member taken out by
`project_member_remove` (their keys for the project are revoked). Projects
are not deleted: a project ends on its end date, and its history and usage
stay.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from projects.models import AllocationChange, Project, ProjectMembership
from projects.services import (
    allocation_set,
    project_create,
    project_member_remove,
    project_member_set,
)

# A change to any of these is a change of the grant: allocation_set keeps it
# in the history. starts_on and monthly_instalments are saved first (the
# service does not set them), then recorded the same way.
ALLOCATION_FIELDS = ("allocation_tokens", "ends_on", "member_cap_tokens")
TERMS_FIELDS = (*ALLOCATION_FIELDS, "starts_on", "monthly_instalments")
# What a change form may alter (the PI is fixed once the project exists).
EDITABLE_FIELDS = (*TERMS_FIELDS, "name", "dedicated")
MEMBER_ROLES = [
    (value, label)
    for value, label in ProjectMembership.ROLES
    if value != ProjectMembership.ROLE_PI
]


class ProjectForm(forms.ModelForm):
    reason = forms.CharField(
        max_length=300,
        required=False,
        help_text="Why the grant is made or changed; kept in the allocation history.",
    )

    class Meta:
        model = Project
        fields = [
            "name",
            "pi",
            "allocation_tokens",
            "starts_on",
            "ends_on",
            "monthly_instalments",
            "member_cap_tokens",
            "dedicated",
        ]


class MembershipForm(forms.ModelForm):
    """A member's row: the user is fixed once added; the PI's row (role
    `pi`) cannot be changed or taken out here."""

    class Meta:
        model = ProjectMembership
        fields = ["user", "role"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        role = self.fields["role"]
        if self.instance.pk is not None:
            self.fields["user"].disabled = True
        if self.instance.role == ProjectMembership.ROLE_PI and self.instance.pk:
            role.disabled = True
        else:
            role.choices = MEMBER_ROLES  # type: ignore[attr-defined]


class MembershipFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        project: Project = self.instance
        for form in self.deleted_forms:
            if form.instance.pk and form.instance.user_id == project.pi_id:
                raise ValidationError("The principal investigator cannot be removed.")
        for form in self.forms:
            user = form.cleaned_data.get("user") if form.is_valid() else None
            if user is not None and not form.instance.pk and user.pk == project.pi_id:
                raise ValidationError("The principal investigator is already a member.")


class MembershipInline(admin.TabularInline):
    model = ProjectMembership
    form = MembershipForm
    formset = MembershipFormSet
    fields = ["user", "role", "added_at"]
    readonly_fields = ["added_at"]
    autocomplete_fields = ["user"]
    extra = 0


class AllocationHistoryInline(admin.TabularInline):
    """Every grant and change, newest first; written only by the services."""

    model = AllocationChange
    verbose_name = "allocation change"
    verbose_name_plural = "allocation history"
    fields = [
        "changed_at",
        "allocation_tokens",
        "starts_on",
        "ends_on",
        "member_cap_tokens",
        "changed_by",
        "reason",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectForm
    list_display = [
        "name",
        "pi",
        "allocation",
        "window",
        "ends_on",
        "members",
        "dedicated",
    ]
    list_filter = ["monthly_instalments", "dedicated", "ends_on"]
    list_select_related = ["pi"]
    search_fields = ["name", "pi__username", "pi__email"]
    autocomplete_fields = ["pi"]
    inlines = [MembershipInline, AllocationHistoryInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        return super().get_queryset(request).annotate(member_count=Count("memberships"))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A project keeps its PI (the services have no way to hand it over).
        return ["pi"] if obj is not None else []

    @admin.display(description="allocation", ordering="allocation_tokens")
    def allocation(self, project: Project) -> str:
        return f"{project.allocation_tokens:,}"

    @admin.display(description="window")
    def window(self, project: Project) -> str:
        return "monthly instalments" if project.monthly_instalments else "whole period"

    @admin.display(description="members", ordering="member_count")
    def members(self, project: Project) -> int:
        return getattr(project, "member_count", 0)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Project, form: Any, change: bool
    ) -> None:
        reason = form.cleaned_data.get("reason", "")
        if not change:
            _project_create_from(obj, by=request.user, reason=reason)
            return
        # Compared with the stored row rather than the form's changed_data,
        # which counts a field with a callable default (starts_on) as changed
        # whenever the form's hidden initial value is not posted back.
        stored = Project.objects.get(pk=obj.pk)
        changed = [
            name
            for name in EDITABLE_FIELDS
            if getattr(obj, name) != getattr(stored, name)
        ]
        plain = [name for name in changed if name not in ALLOCATION_FIELDS]
        if plain:
            obj.save(update_fields=plain)
        terms = [name for name in changed if name in TERMS_FIELDS]
        if terms:
            allocation_set(
                project=obj,
                allocation_tokens=obj.allocation_tokens,
                ends_on=obj.ends_on,
                # allocation_set reads 0 as "no cap" and None as "unchanged".
                member_cap_tokens=obj.member_cap_tokens or 0,
                changed_by=request.user,  # type: ignore[arg-type]
                reason=reason or f"changed in admin: {', '.join(terms)}",
            )

    def save_formset(
        self, request: HttpRequest, form: Any, formset: Any, change: bool
    ) -> None:
        if formset.model is not ProjectMembership:
            super().save_formset(request, form, formset, change)
            return
        project: Project = form.instance
        formset.save(commit=False)
        for membership in formset.deleted_objects:
            stopped = project_member_remove(project=project, user=membership.user)
            _removed_message(self, request, membership, stopped)
        touched = [*formset.new_objects, *(obj for obj, _ in formset.changed_objects)]
        for membership in touched:
            if membership.user_id != project.pi_id:
                project_member_set(
                    project=project, user=membership.user, role=membership.role
                )


def _project_create_from(obj: Project, *, by: Any, reason: str) -> None:
    """Make the project the add form describes through the service, and turn
    the form's unsaved instance into it (the admin goes on with `obj`)."""
    project = project_create(
        name=obj.name,
        pi=obj.pi,
        allocation_tokens=obj.allocation_tokens,
        ends_on=obj.ends_on,
        starts_on=obj.starts_on,
        member_cap_tokens=obj.member_cap_tokens,
        monthly_instalments=obj.monthly_instalments,
        dedicated=obj.dedicated,
        changed_by=by,
        reason=reason or "granted in admin",
    )
    obj.pk = project.pk
    obj.created_at = project.created_at
    obj._state.adding = False
    obj._state.db = project._state.db


def _removed_message(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    membership: ProjectMembership,
    stopped: int,
) -> None:
    model_admin.message_user(
        request,
        f"Removed {membership.user} from {membership.project}; "
        f"{stopped} project key(s) revoked.",
        messages.SUCCESS,
    )


class MembershipAdminForm(forms.ModelForm):
    class Meta:
        model = ProjectMembership
        fields = ["project", "user", "role"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "role" in self.fields:
            self.fields["role"].choices = MEMBER_ROLES  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        project, user = data.get("project"), data.get("user")
        if project is not None and user is not None and user.pk == project.pi_id:
            raise ValidationError("The principal investigator is always a member.")
        return data


@admin.register(ProjectMembership)
class ProjectMembershipAdmin(admin.ModelAdmin):
    """Members across projects. Deleting a membership here takes the member
    out through the service: their keys for the project are revoked."""

    form = MembershipAdminForm
    list_display = ["user", "project", "role", "added_at"]
    list_filter = ["role", "project"]
    list_select_related = ["user", "project"]
    search_fields = ["user__username", "user__email", "project__name"]
    autocomplete_fields = ["project", "user"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["added_at"]
        if obj.role == ProjectMembership.ROLE_PI:
            return ["project", "user", "role", "added_at"]
        return ["project", "user", "added_at"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.role == ProjectMembership.ROLE_PI:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: ProjectMembership, form: Any, change: bool
    ) -> None:
        if obj.role == ProjectMembership.ROLE_PI:
            return  # the PI's row does not change
        saved = project_member_set(project=obj.project, user=obj.user, role=obj.role)
        obj.pk, obj.added_at = saved.pk, saved.added_at
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: ProjectMembership) -> None:
        stopped = project_member_remove(project=obj.project, user=obj.user)
        _removed_message(self, request, obj, stopped)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[ProjectMembership]
    ) -> None:
        kept = 0
        for membership in queryset.select_related("project", "user"):
            if membership.role == ProjectMembership.ROLE_PI:
                kept += 1
                continue
            stopped = project_member_remove(
                project=membership.project, user=membership.user
            )
            _removed_message(self, request, membership, stopped)
        if kept:
            self.message_user(
                request,
                f"Kept {kept} principal investigator(s): a project keeps its PI.",
                messages.WARNING,
            )


@admin.register(AllocationChange)
class AllocationChangeAdmin(admin.ModelAdmin):
    """The allocation history, read-only: written by the services alone."""

    list_display = [
        "project",
        "allocation_tokens",
        "starts_on",
        "ends_on",
        "member_cap_tokens",
        "changed_by",
        "reason",
        "changed_at",
    ]
    list_filter = ["project"]
    list_select_related = ["project", "changed_by"]
    search_fields = ["project__name", "reason"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# Allocation requests have their own module (this one is long enough).
from projects import admin_requests  # noqa: E402, F401
