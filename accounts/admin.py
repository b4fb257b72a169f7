from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import User
from accounts.services import user_approve


@admin.register(User)
class PorticoUserAdmin(UserAdmin):
    list_display = (
        "username",
        "email",
        "is_active",
        "pending_approval",
        "is_staff",
        "date_joined",
        "last_login",
    )
    list_filter = ("pending_approval", "is_active", "is_staff", "groups")
    readonly_fields = ("approved_at", "last_login", "date_joined")
    fieldsets = (
        *UserAdmin.fieldsets,
        ("Approval", {"fields": ("pending_approval", "approved_at")}),
    )
    actions = ["approve_selected"]

    @admin.action(description="Approve selected pending accounts")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        approved = 0
        for user in queryset.filter(pending_approval=True):
            user_approve(user=user)
            approved += 1
        self.message_user(request, f"Approved {approved} account(s).", messages.SUCCESS)
