"""Writes for projects: grants, members and their keys. Every change to an
allocation is kept in its history; removing a member stops their project keys
in every process within 2 seconds."""

from __future__ import annotations

from datetime import date, datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, User
from accounts.services import IssuedKey, apikey_create, apikey_revoke
from projects.models import AllocationChange, Project, ProjectMembership


def _history_add(*, project: Project, changed_by: User | None, reason: str) -> None:
    AllocationChange.objects.create(
        project=project,
        allocation_tokens=project.allocation_tokens,
        starts_on=project.starts_on,
        ends_on=project.ends_on,
        member_cap_tokens=project.member_cap_tokens,
        changed_by=changed_by,
        reason=reason[:300],
    )


@transaction.atomic
def project_create(
    *,
    name: str,
    pi: User,
    allocation_tokens: int,
    ends_on: date,
    starts_on: date | None = None,
    member_cap_tokens: int | None = None,
    monthly_instalments: bool = False,
    dedicated: bool = False,
    changed_by: User | None = None,
    reason: str = "granted",
) -> Project:
    """A project with its PI as its first member and its grant in the history."""
    project = Project(
        name=name.strip(),
        pi=pi,
        allocation_tokens=allocation_tokens,
        starts_on=starts_on or timezone.localdate(),
        ends_on=ends_on,
        member_cap_tokens=member_cap_tokens,
        monthly_instalments=monthly_instalments,
        dedicated=dedicated,
    )
    project.full_clean()
    project.save()
    ProjectMembership.objects.create(
        project=project, user=pi, role=ProjectMembership.ROLE_PI
    )
    _history_add(project=project, changed_by=changed_by, reason=reason)
    return project


@transaction.atomic
def allocation_set(
    *,
    project: Project,
    allocation_tokens: int | None = None,
    ends_on: date | None = None,
    member_cap_tokens: int | None = None,
    changed_by: User | None = None,
    reason: str = "",
) -> Project:
    """Change the grant (more tokens, a later end, a cap); kept in the history."""
    locked = Project.objects.select_for_update().get(pk=project.pk)
    if allocation_tokens is not None:
        locked.allocation_tokens = allocation_tokens
    if ends_on is not None:
        locked.ends_on = ends_on
    if member_cap_tokens is not None:
        locked.member_cap_tokens = member_cap_tokens or None
    locked.full_clean()
    locked.save()
    _history_add(project=locked, changed_by=changed_by, reason=reason or "changed")
    return locked


@transaction.atomic
def project_member_set(
    *, project: Project, user: User, role: str = ProjectMembership.ROLE_MEMBER
) -> ProjectMembership:
    """Add `user` or change their role. The PI stays PI."""
    if role not in {ProjectMembership.ROLE_MANAGER, ProjectMembership.ROLE_MEMBER}:
        raise ValidationError({"role": "A member is a manager or a member."})
    if user.pk == project.pi_id:
        raise ValidationError(
            {"user": "The principal investigator is always a member."}
        )
    membership, created = ProjectMembership.objects.get_or_create(
        project=project, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def project_member_remove(*, project: Project, user: User) -> int:
    """Take `user` out of the project: their keys for it are revoked (in every
    process within 2 s); nothing else of theirs changes. Returns the number
    of keys stopped."""
    if user.pk == project.pi_id:
        raise ValidationError({"user": "The principal investigator cannot be removed."})
    ProjectMembership.objects.filter(project=project, user=user).delete()
    keys = ApiKey.objects.filter(project=project, user=user, revoked_at__isnull=True)
    stopped = 0
    for key in keys:
        apikey_revoke(key=key)
        stopped += 1
    return stopped


def project_key_create(
    *,
    project: Project,
    user: User,
    name: str,
    expires_at: datetime | None = None,
    allowed_models: list[str] | None = None,
) -> IssuedKey:
    """A key that bills `project`; only its members may have one."""
    if not ProjectMembership.objects.filter(project=project, user=user).exists():
        raise ValidationError({"project": f"You are not a member of {project.name}."})
    return apikey_create(
        user=user,
        name=name,
        expires_at=expires_at,
        allowed_models=allowed_models,
        project_id=project.pk,
    )
