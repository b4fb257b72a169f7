"""Small factory functions for tests (no JSON fixtures)."""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress

from accounts.models import User
from accounts.services import IssuedKey, apikey_create

PASSWORD = "correct horse battery staple"


def user_make(*, username: str, password: str = PASSWORD, **fields: Any) -> User:
    fields.setdefault("email", f"{username}@example.org")
    user = User.objects.create_user(username=username, password=password, **fields)
    EmailAddress.objects.create(
        user=user, email=user.email, verified=True, primary=True
    )
    return user


def apikey_make(*, user: User, name: str = "laptop", **fields: Any) -> IssuedKey:
    """A key through the real service; `.raw` is the key, `.key` the record."""
    return apikey_create(user=user, name=name, **fields)
