from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.models import ApiKey, User
from accounts.selectors import user_list_with_key_counts
from accounts.services import (
    apikey_cache_invalidate,
    apikey_revoke,
    user_approve,
    user_deactivate,
)


@admin.register(User)
class PorticoUserAdmin(UserAdmin):
    list_display = (
        "username",
        "email",
        "is_active",
        "pending_approval",
        "is_staff",
        "api_keys_column",
        "date_joined",
        "last_login",
    )
    list_filter = ("pending_approval", "is_active", "is_staff", "groups")
    readonly_fields = ("approved_at", "last_login", "date_joined")
    fieldsets = (
        *UserAdmin.fieldsets,
        ("Approval", {"fields": ("pending_approval", "approved_at")}),
    )
    actions = ["approve_selected", "deactivate_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return user_list_with_key_counts(super().get_queryset(request))

    @admin.display(description="Active API keys", ordering="active_key_count")
    def api_keys_column(self, user: User) -> str:
        url = reverse("admin:accounts_apikey_changelist")
        return format_html(
            '<a href="{}?user__id__exact={}">{}</a>',
            url,
            user.pk,
            getattr(user, "active_key_count", 0),
        )

    def save_related(self, request, form, formsets, change):  # type: ignore[no-untyped-def]
        super().save_related(request, form, formsets, change)
        if change:
            # Active flag, groups or staff status may have changed what the
            # user's keys can do: every process re-checks within 2 seconds.
            apikey_cache_invalidate()

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        super().delete_model(request, obj)
        apikey_cache_invalidate()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        super().delete_queryset(request, queryset)
        apikey_cache_invalidate()

    @admin.action(description="Approve selected pending accounts")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        approved = 0
        for user in queryset.filter(pending_approval=True):
            user_approve(user=user)
            approved += 1
        self.message_user(request, f"Approved {approved} account(s).", messages.SUCCESS)

    @admin.action(description="Deactivate selected accounts (and their API keys)")
    def deactivate_selected(
        self, request: HttpRequest, queryset: QuerySet[User]
    ) -> None:
        users = list(queryset.filter(is_active=True).exclude(pk=request.user.pk))
        for user in users:
            user_deactivate(user=user)
        self.message_user(
            request, f"Deactivated {len(users)} account(s).", messages.SUCCESS
        )


class ApiKeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        now = timezone.now()
        unexpired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        if self.value() == "active":
            return queryset.filter(unexpired, revoked_at__isnull=True)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True).exclude(unexpired)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are made by their owners (Settings, /api/keys/) or by `issuekey`;
    staff end them with the revoke action. The digest is never shown."""

    list_display = (
        "name",
        "user",
        "display",
        "lookup_id",
        "state",
        "created_at",
        "last_used_at",
        "expires_at",
    )
    list_filter = (ApiKeyStateFilter, "created_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email", "name", "lookup_id")
    fields = (
        "user",
        "name",
        "display",
        "lookup_id",
        "allowed_models",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "rolled_from",
    )
    readonly_fields = tuple(field for field in fields if field != "name")
    actions = ["revoke_selected"]

    @admin.display(description="key")
    def display(self, key: ApiKey) -> str:
        return key.display

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        super().delete_model(request, obj)
        apikey_cache_invalidate()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        super().delete_queryset(request, queryset)
        apikey_cache_invalidate()

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        keys = list(queryset.filter(revoked_at__isnull=True))
        for key in keys:
            apikey_revoke(key=key)
        self.message_user(request, f"Revoked {len(keys)} key(s).", messages.SUCCESS)
