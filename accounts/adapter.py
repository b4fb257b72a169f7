"""allauth adapter: applies REGISTRATION_MODE, nothing else."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest

from accounts.models import User
from accounts.services import user_mark_pending


class PorticoAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return settings.REGISTRATION_MODE != "closed"

    def save_user(
        self, request: HttpRequest, user: User, form: Any, commit: bool = True
    ) -> User:
        user = super().save_user(request, user, form, commit=False)
        if settings.REGISTRATION_MODE == "approval":
            user_mark_pending(user=user)
        if commit:
            user.save()
        return user
