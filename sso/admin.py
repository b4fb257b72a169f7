"""Admin: institutions on the login page, claim rules, and the memberships
rules gave (read-only: sign-ins write them). The providers themselves are
allauth's Social applications (OpenID Connect and SAML), in its own admin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from sso.models import (
    ClaimGroupGrant,
    ClaimGroupRule,
    Institution,
    institution_search_text,
)


@admin.register(Institution)
class InstitutionAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "provider_id",
        "protocol",
        "domains",
        "federation",
        "enabled",
    )
    list_filter = ("protocol", "federation", "enabled", "research_and_scholarship")
    search_fields = ("name", "domains", "provider_id", "entity_id")
    readonly_fields = ("updated_at",)

    def save_model(
        self, request: HttpRequest, obj: Institution, form: Any, change: bool
    ) -> None:
        obj.domains = " ".join(obj.domains.lower().split())
        obj.search_text = institution_search_text(name=obj.name, domains=obj.domains)
        super().save_model(request, obj, form, change)


@admin.register(ClaimGroupRule)
class ClaimGroupRuleAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "provider",
        "claim",
        "match",
        "value",
        "group",
        "enabled",
    )
    list_filter = ("enabled", "match", "group")
    search_fields = ("name", "claim", "value", "provider")


@admin.register(ClaimGroupGrant)
class ClaimGroupGrantAdmin(admin.ModelAdmin):
    list_display = ("user", "group", "provider", "rule", "preexisting", "granted_at")
    list_filter = ("provider", "group", "preexisting")
    search_fields = ("user__username", "user__email", "provider")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
