"""Asking for compute the way HPC centres grant it: a researcher requests a
new project, a PI or manager requests more for theirs; staff decide in admin
with the amount, dates and service class; the PI hears by e-mail; the grant
lands in the allocation's history through the same services as any other."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import staff_emails
from projects.models import AllocationRequest, Project, ProjectMembership
from projects.services import allocation_set, project_create

logger = logging.getLogger(__name__)


def _mail(subject: str, body: str, recipients: list[str]) -> None:
    if not recipients:
        return

    def send() -> None:
        try:
            send_mail(f"[{settings.SITE_NAME}] {subject}", body, None, recipients)
        except Exception:  # a failed mail must not undo a decision
            logger.exception("could not send the allocation request mail")

    transaction.on_commit(send)


@transaction.atomic
def allocation_request_create(
    *,
    requester: User,
    tokens: int,
    ends_on: date,
    justification: str,
    project: Project | None = None,
    name: str = "",
) -> AllocationRequest:
    """A request for a new project (`name`) or for more of `project` (its PI
    or a manager only). One pending request per project or name."""
    errors: dict[str, str] = {}
    if tokens <= 0:
        errors["tokens"] = "Ask for a positive number of tokens."
    if ends_on < timezone.localdate():
        errors["ends_on"] = "The end date has passed."
    if not justification.strip():
        errors["justification"] = "Say what the tokens are for."
    if project is None and not name.strip():
        errors["name"] = "Name the project."
    if project is None and Project.objects.filter(name=name.strip()).exists():
        errors["name"] = "A project of that name exists."
    if (
        project is not None
        and not ProjectMembership.objects.filter(
            project=project,
            user=requester,
            role__in=[ProjectMembership.ROLE_PI, ProjectMembership.ROLE_MANAGER],
        ).exists()
    ):
        errors["project"] = "Only the PI and managers ask for more."
    pending = AllocationRequest.objects.filter(
        state=AllocationRequest.State.PENDING, project=project
    )
    if project is None:
        pending = pending.filter(name=name.strip())
    if pending.exists():
        errors["project"] = "A request for this is already waiting."
    if errors:
        raise ValidationError(errors)
    request = AllocationRequest.objects.create(
        requester=requester,
        project=project,
        name=name.strip()[:100],
        tokens=tokens,
        ends_on=ends_on,
        justification=justification.strip(),
    )
    _mail(
        f"{requester.get_username()} asks for {tokens:,} tokens",
        f"{request}.\n\nUntil {ends_on:%Y-%m-%d}.\n\n{request.justification}\n\n"
        "Decide it in the admin under Allocation requests.",
        staff_emails(),
    )
    return request


def _grant(request: AllocationRequest, staff: Any) -> Project:
    tokens = request.granted_tokens or request.tokens
    ends_on = request.granted_ends_on or request.ends_on
    if request.project_id is None:
        return project_create(
            name=request.name,
            pi=request.requester,
            allocation_tokens=tokens,
            starts_on=request.granted_starts_on or timezone.localdate(),
            ends_on=ends_on,
            dedicated=request.granted_dedicated,
            changed_by=staff,
            reason=f"request #{request.pk} approved",
        )
    project = request.project
    assert project is not None
    if request.granted_dedicated and not project.dedicated:
        Project.objects.filter(pk=project.pk).update(dedicated=True)
    return allocation_set(
        project=project,
        allocation_tokens=project.allocation_tokens + tokens,
        ends_on=max(ends_on, project.ends_on),
        changed_by=staff,
        reason=f"request #{request.pk} approved: +{tokens:,}",
    )


@transaction.atomic
def allocation_request_decide(
    *, request: AllocationRequest, approve: bool, staff: Any, note: str = ""
) -> AllocationRequest:
    """Approve (grant what the request's `granted_*` fields say, else what was
    asked) or refuse a pending request, and tell the requester. Deciding
    twice changes nothing."""
    locked = AllocationRequest.objects.select_for_update().get(pk=request.pk)
    if locked.state != AllocationRequest.State.PENDING:
        return locked
    project = _grant(locked, staff) if approve else None
    if project is not None and locked.project_id is None:
        locked.project = project
    locked.state = (
        AllocationRequest.State.APPROVED if approve else AllocationRequest.State.REFUSED
    )
    locked.decided_by, locked.decided_at = staff, timezone.now()
    if note:
        locked.staff_note = note
    locked.save()
    verdict = "approved" if approve else "refused"
    body = f"Your request ({locked}) was {verdict}."
    if project is not None:
        body += (
            f"\n\n{project.name} now has {project.allocation_tokens:,} tokens "
            f"until {project.ends_on:%Y-%m-%d}."
        )
    if locked.staff_note:
        body += f"\n\nNote from the operators: {locked.staff_note}"
    recipient = locked.requester.email
    _mail(f"Allocation request {verdict}", body, [recipient] if recipient else [])
    return locked
