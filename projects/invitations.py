"""Writes for project invitations: the PI or a manager invites someone by
username or e-mail address; the link goes out by e-mail (and is shown once to
whoever sent it); only the invited account, or an account holding the invited
address verified, may accept or decline. Nobody joins without accepting, even
when the username or address already has an account."""

from __future__ import annotations

import logging
import secrets
import smtplib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from projects.models import Project, ProjectInvitation, ProjectMembership
from projects.selectors import (
    invitation_is_for,
    invitation_token_digest,
    roles_to_invite,
)
from projects.services import project_member_set

INVITATION_DAYS = 14
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SentInvitation:
    invitation: ProjectInvitation
    link: str  # holds the raw token; never stored


def _invitee(who: str) -> tuple[User | None, str]:
    """An account by its username, else an e-mail address."""
    who = who.strip()
    user = User.objects.filter(username=who).first()
    if user is not None:
        return user, ""
    try:
        validate_email(who)
    except ValidationError:
        raise ValidationError(
            {
                "who": "No account has that username. To invite someone "
                "without an account, give their e-mail address."
            }
        ) from None
    return None, who


def _already_member(project: Project, user: User | None, email: str) -> bool:
    members = ProjectMembership.objects.filter(project=project)
    if user is not None:
        return members.filter(user=user).exists()
    return members.filter(
        user__emailaddress__email__iexact=email, user__emailaddress__verified=True
    ).exists()


def _mail_send(*, project: Project, invitation: ProjectInvitation, link: str) -> None:
    recipient = invitation.user.email if invitation.user else invitation.email
    if not recipient:
        return
    inviter = invitation.invited_by.get_username() if invitation.invited_by else "A"
    until = timezone.localtime(invitation.expires_at)
    body = (
        f"{inviter} invites you to join the project {project.name} on "
        f"{settings.SITE_NAME} as {invitation.get_role_display()}.\n\n"
        f"Accept or decline here (sign in first): {link}\n\n"
        f"The link works until {until:%Y-%m-%d %H:%M %Z}."
        " If you did not expect this, ignore this e-mail.\n"
    )
    try:
        send_mail(
            f"[{settings.SITE_NAME}] Join {project.name}", body, None, [recipient]
        )
    except (OSError, smtplib.SMTPException):
        # The invitation stands; its sender was shown the link to pass on.
        logger.warning("project invitation %s: e-mail failed", invitation.pk)


@transaction.atomic
def invitation_create(
    *,
    project: Project,
    invited_by: ProjectMembership,
    who: str,
    role: str,
    link_base: str,
) -> SentInvitation:
    """Invite `who` (a username or an e-mail address) as `role`. A pending
    invitation for the same person is replaced. `link_base` is the absolute
    URL the token is appended to."""
    if role not in roles_to_invite(actor=invited_by):
        raise ValidationError({"role": "You may not invite with that role."})
    user, email = _invitee(who)
    if _already_member(project, user, email):
        raise ValidationError({"who": "Already a member of this project."})
    now = timezone.now()
    pending = ProjectInvitation.objects.filter(
        project=project,
        accepted_at__isnull=True,
        declined_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=now,
    )
    pending = pending.filter(user=user) if user else pending.filter(email__iexact=email)
    pending.update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    invitation = ProjectInvitation.objects.create(
        project=project,
        token_digest=invitation_token_digest(token),
        user=user,
        email=email,
        role=role,
        invited_by=invited_by.user,
        created_at=now,
        expires_at=now + timedelta(days=INVITATION_DAYS),
    )
    link = f"{link_base}{token}/"
    transaction.on_commit(
        lambda: _mail_send(project=project, invitation=invitation, link=link)
    )
    return SentInvitation(invitation=invitation, link=link)


def _locked_pending(invitation: ProjectInvitation) -> ProjectInvitation:
    locked = ProjectInvitation.objects.select_for_update().get(pk=invitation.pk)
    state = locked.state_at(timezone.now())
    if state != "pending":
        raise ValidationError(f"This invitation is {state}.")
    return locked


@transaction.atomic
def invitation_revoke(*, invitation: ProjectInvitation) -> ProjectInvitation:
    """Withdraw a pending invitation: its link stops working."""
    locked = _locked_pending(invitation)
    locked.revoked_at = timezone.now()
    locked.save(update_fields=["revoked_at"])
    return locked


@transaction.atomic
def invitation_accept(
    *, invitation: ProjectInvitation, user: User
) -> ProjectMembership:
    """Join the project with the invited role. Someone already in it keeps
    the role they have."""
    locked = _locked_pending(invitation)
    if not invitation_is_for(invitation=locked, user=user):
        raise ValidationError("This invitation is for another account.")
    membership = ProjectMembership.objects.filter(
        project_id=locked.project_id, user=user
    ).first()
    if membership is None:
        membership = project_member_set(
            project=locked.project, user=user, role=locked.role
        )
    locked.accepted_at = timezone.now()
    locked.answered_by = user
    locked.save(update_fields=["accepted_at", "answered_by"])
    return membership


@transaction.atomic
def invitation_decline(*, invitation: ProjectInvitation, user: User) -> None:
    locked = _locked_pending(invitation)
    if not invitation_is_for(invitation=locked, user=user):
        raise ValidationError("This invitation is for another account.")
    locked.declined_at = timezone.now()
    locked.answered_by = user
    locked.save(update_fields=["declined_at", "answered_by"])
