"""Small factory functions for tests (no JSON fixtures)."""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress

from accounts.models import User

PASSWORD = "correct horse battery staple"


def user_make(*, username: str, password: str = PASSWORD, **fields: Any) -> User:
    fields.setdefault("email", f"{username}@example.org")
    user = User.objects.create_user(username=username, password=password, **fields)
    EmailAddress.objects.create(
        user=user, email=user.email, verified=True, primary=True
    )
    return user
