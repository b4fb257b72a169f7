"""Writes for accounts: approval of pending sign-ups, operator bootstrap."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User


def user_mark_pending(*, user: User) -> User:
    """Hold a fresh sign-up until staff approve it (REGISTRATION_MODE=approval).

    The account is inactive, so allauth and Django refuse its logins, and it is
    flagged pending so that admin can tell it from a deactivated account.
    """
    user.is_active = False
    user.pending_approval = True
    return user


@transaction.atomic
def user_approve(*, user: User) -> User:
    """Let a pending account in. Approving an already active account is a no-op."""
    if not user.pending_approval:
        return user
    user.is_active = True
    user.pending_approval = False
    user.approved_at = timezone.now()
    user.save(update_fields=["is_active", "pending_approval", "approved_at"])
    return user


def admin_ensure(*, username: str, email: str, password: str) -> tuple[User, bool]:
    """Create the first superuser if no superuser exists yet.

    Returns the superuser and whether it was created now, so `make run` prints a
    login only the first time and never resets a password an operator changed.
    """
    existing = User.objects.filter(is_superuser=True).order_by("pk").first()
    if existing is not None:
        return existing, False
    user = User.objects.create_superuser(username=username, email=email, password=password)
    return user, True
