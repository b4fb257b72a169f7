"""Writes for service classes: users ask to join a requestable group, and
staff decide."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.selectors import staff_emails
from accounts.services import apikey_cache_invalidate
from catalog.models import AccessRequest, GroupLimits


@transaction.atomic
def access_request_create(
    *,
    user: Any,
    group: Group,
    use_case: str,
    models_wanted: str = "",
    expected_volume: str = "",
) -> AccessRequest:
    """Ask to join a service class. Only requestable groups, one pending
    request per class, none for a class the user already holds. Staff hear
    about it by e-mail once the request is saved."""
    limits = GroupLimits.objects.filter(group=group, requestable=True).first()
    if limits is None:
        raise ValidationError("This class cannot be requested.")
    if user.groups.filter(pk=group.pk).exists():
        raise ValidationError(f"You already belong to {group.name}.")
    if AccessRequest.objects.filter(
        user=user, group=group, state=AccessRequest.State.PENDING
    ).exists():
        raise ValidationError(f"Your request for {group.name} is already waiting.")
    if not use_case.strip():
        raise ValidationError("Describe your use case.")
    request = AccessRequest.objects.create(
        user=user,
        group=group,
        use_case=use_case.strip(),
        models_wanted=models_wanted.strip()[:500],
        expected_volume=expected_volume.strip()[:200],
    )
    recipients = staff_emails()
    if recipients:
        transaction.on_commit(
            lambda: send_mail(
                f"[{settings.SITE_NAME}] {user.get_username()} asks for {group.name}",
                f"{user.get_username()} asks to join {group.name}.\n\n"
                f"Use case: {request.use_case}\nModels: {request.models_wanted}\n"
                f"Expected volume: {request.expected_volume}\n\n"
                "Approve or refuse it in the admin under Access requests.",
                None,
                recipients,
            )
        )
    return request


@transaction.atomic
def access_request_decide(
    *, request: AccessRequest, approve: bool, staff: Any, note: str = ""
) -> AccessRequest:
    """Approve (the user joins the class's group) or refuse a pending request,
    and tell the user by e-mail. Deciding twice changes nothing."""
    locked = AccessRequest.objects.select_for_update().get(pk=request.pk)
    if locked.state != AccessRequest.State.PENDING:
        return locked
    locked.state = (
        AccessRequest.State.APPROVED if approve else AccessRequest.State.REFUSED
    )
    locked.decided_by = staff
    locked.decided_at = timezone.now()
    if note:
        locked.staff_note = note
    locked.save(update_fields=["state", "decided_by", "decided_at", "staff_note"])
    user = locked.user
    if approve:
        user.groups.add(locked.group)
        # Keys cache their owner's groups: make every process re-read them.
        apikey_cache_invalidate()
    if user.email:
        verdict = "approved" if approve else "refused"
        body = f"Your request to join {locked.group.name} was {verdict}."
        if locked.staff_note:
            body += f"\n\nNote from the operators: {locked.staff_note}"
        transaction.on_commit(
            lambda: send_mail(
                f"[{settings.SITE_NAME}] Access to {locked.group.name} {verdict}",
                body,
                None,
                [user.email],
            )
        )
    return locked
