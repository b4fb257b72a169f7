"""Reads for Settings > Projects: who sees a project and as what, what its
window has used, usage by member, model and day over any period, the
allocation's history and invitations.

A project's use is what its keys billed: the daily rollups of the project's
keys plus its records not rolled up yet, in one UNION statement, so a rollup
run committing meanwhile can neither hide a record nor count it twice (as
usage.selectors does for users). A key bills one project for its whole life,
so its daily rows belong to that project alone.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from allauth.account.models import EmailAddress
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from accounts.models import ApiKey, User
from projects.models import (
    AllocationChange,
    Project,
    ProjectInvitation,
    ProjectMembership,
)
from projects.windows import AllocationTerms, Window, window_at
from usage.models import DailyUsage, DailyUserAnalytics, UsageRecord
from usage.periods import local_day, local_midnight, local_zone
from usage.selectors import TotalsRow

ROLE_ORDER = {
    ProjectMembership.ROLE_PI: 0,
    ProjectMembership.ROLE_MANAGER: 1,
    ProjectMembership.ROLE_MEMBER: 2,
}
MANAGING_ROLES = (ProjectMembership.ROLE_PI, ProjectMembership.ROLE_MANAGER)
_SUMS = ("requests", "errors", "prompt_tokens", "completion_tokens", "weighted_tokens")
_GROUPS = ("day", "user_id", "model")


def project_terms(*, project: Project) -> AllocationTerms:
    return AllocationTerms(
        project_id=project.pk,
        name=project.name,
        allocation_tokens=project.allocation_tokens,
        starts_on=project.starts_on,
        ends_on=project.ends_on,
        monthly_instalments=project.monthly_instalments,
        member_cap_tokens=project.member_cap_tokens,
        dedicated=project.dedicated,
    )


def membership_get(*, user: User, project_id: int) -> ProjectMembership | None:
    """The user's membership of a project with the project; None for
    non-members, staff included (the pages answer 404)."""
    return (
        ProjectMembership.objects.select_related("project", "project__pi")
        .filter(user=user, project_id=project_id)
        .first()
    )


def manages(membership: ProjectMembership) -> bool:
    return membership.role in MANAGING_ROLES


def may_remove(*, actor: ProjectMembership, target: ProjectMembership) -> bool:
    """The PI removes managers and members; managers remove members; nobody
    removes the PI."""
    if target.role == ProjectMembership.ROLE_PI:
        return False
    if actor.role == ProjectMembership.ROLE_PI:
        return True
    return (
        actor.role == ProjectMembership.ROLE_MANAGER
        and target.role == ProjectMembership.ROLE_MEMBER
    )


def roles_to_invite(*, actor: ProjectMembership) -> list[str]:
    """The PI invites managers and members; managers invite members."""
    if actor.role == ProjectMembership.ROLE_PI:
        return [ProjectMembership.ROLE_MEMBER, ProjectMembership.ROLE_MANAGER]
    if actor.role == ProjectMembership.ROLE_MANAGER:
        return [ProjectMembership.ROLE_MEMBER]
    return []


def _record_sums() -> dict[str, Any]:
    """Raw records summed as the rollups sum them (the columns line up)."""
    return {
        "s_requests": Count("id"),
        "s_errors": Count("id", filter=Q(status__gte=400)),
        "s_prompt_tokens": Sum("prompt_tokens"),
        "s_completion_tokens": Sum("completion_tokens"),
        "s_weighted_tokens": Sum("weighted_tokens"),
    }


def _rolled(
    *, project_id: int, first_day: date, end_day: date, by: tuple[str, ...]
) -> QuerySet[Any]:
    """The rolled-up side. Without a per-model split, the analytics rollup's
    (day, user, project) rows: they hold every request that billed the
    project, chat turns included. Per model, the daily usage of the project's
    keys (that rollup has no project column: chat turns billed to a project
    are missing from the per-model split once rolled up)."""
    if "model" not in by:
        every = (
            F("served")
            + F("refused_429")
            + F("refused_503")
            + F("refused_other")
            + F("failed")
        )
        return DailyUserAnalytics.objects.filter(
            project_id=project_id, day__gte=first_day, day__lt=end_day
        ).annotate(
            r_requests=every,
            r_errors=every - F("served"),
            r_prompt_tokens=F("prompt_tokens"),
            r_completion_tokens=F("completion_tokens"),
            r_weighted_tokens=F("weighted_tokens"),
        )
    keys = ApiKey.objects.filter(project_id=project_id).values("pk")
    return DailyUsage.objects.filter(
        key_id__in=keys, day__gte=first_day, day__lt=end_day
    ).annotate(**{f"r_{name}": F(name) for name in _SUMS})


def project_totals(
    *,
    project_id: int,
    first_day: date,
    end_day: date,
    by: tuple[str, ...],
    user_id: int | None = None,
) -> dict[tuple[Any, ...], TotalsRow]:
    """The project's totals over local days [first_day, end_day) grouped by
    any of "day", "user_id" and "model"; only `user_id`'s when given."""
    if not by or not set(by) <= set(_GROUPS):
        raise ValueError(f"group by one or more of {_GROUPS}")
    start, end = local_midnight(first_day), local_midnight(end_day)
    rolled = _rolled(project_id=project_id, first_day=first_day, end_day=end_day, by=by)
    pending = UsageRecord.objects.filter(
        project_id=project_id,
        rollup_batch__isnull=True,
        started_at__gte=start,
        started_at__lt=end,
    )
    if user_id is not None:
        rolled, pending = (
            rolled.filter(user_id=user_id),
            pending.filter(user_id=user_id),
        )
    aliases = [f"g_{name}" for name in by]
    for name, alias in zip(by, aliases, strict=True):
        rolled = rolled.annotate(**{alias: F(name)})
        pending = pending.annotate(
            **{
                alias: TruncDate("started_at", tzinfo=local_zone())
                if name == "day"
                else F(name)
            }
        )
    rolled = (
        rolled.values(*aliases)
        .annotate(**{f"s_{name}": Sum(f"r_{name}") for name in _SUMS})
        .order_by()
    )
    pending = pending.values(*aliases).annotate(**_record_sums()).order_by()
    totals: dict[tuple[Any, ...], TotalsRow] = defaultdict(TotalsRow)
    for row in rolled.union(pending, all=True):
        target = totals[tuple(row[alias] for alias in aliases)]
        for name in _SUMS:
            setattr(target, name, getattr(target, name) + int(row[f"s_{name}"] or 0))
    return dict(totals)


def project_used(
    *, project_id: int, first_day: date, end_day: date, user_id: int | None = None
) -> int:
    rows = project_totals(
        project_id=project_id,
        first_day=first_day,
        end_day=end_day,
        by=("user_id",),
        user_id=user_id,
    )
    return sum(row.weighted_tokens for row in rows.values())


@dataclass
class WindowUse:
    project: Project
    window: Window | None
    used: int = 0

    @property
    def remaining(self) -> int | None:
        return None if self.window is None else max(0, self.window.limit - self.used)

    @property
    def first_day(self) -> date | None:
        return None if self.window is None else local_day(self.window.start)

    @property
    def last_day(self) -> date | None:
        return (
            None
            if self.window is None
            else local_day(self.window.end) - timedelta(days=1)
        )


def window_use(
    *, project: Project, now: datetime, user_id: int | None = None
) -> WindowUse:
    """The window `now` falls in and what it has used (only `user_id`'s when
    given: a member's share against the per-member cap)."""
    window = window_at(project_terms(project=project), now)
    use = WindowUse(project=project, window=window)
    if window is not None:
        use.used = project_used(
            project_id=project.pk,
            first_day=local_day(window.start),
            end_day=local_day(window.end),
            user_id=user_id,
        )
    return use


@dataclass
class ProjectRow:
    membership: ProjectMembership
    use: WindowUse


def project_list_for_user(*, user: User, now: datetime) -> list[ProjectRow]:
    memberships = ProjectMembership.objects.filter(user=user).select_related(
        "project", "project__pi"
    )
    return [
        ProjectRow(m, window_use(project=m.project, now=now))
        for m in sorted(memberships, key=lambda m: m.project.name.lower())
    ]


def member_list(*, project: Project) -> list[ProjectMembership]:
    members = ProjectMembership.objects.filter(project=project).select_related("user")
    return sorted(
        members, key=lambda m: (ROLE_ORDER.get(m.role, 9), m.user.get_username())
    )


@dataclass
class UsageLine:
    label: str
    totals: TotalsRow


@dataclass
class PeriodUsage:
    first_day: date
    last_day: date
    by_member: list[UsageLine] = field(default_factory=list)
    by_model: list[UsageLine] = field(default_factory=list)
    total: TotalsRow = field(default_factory=TotalsRow)


def _ordered(lines: list[UsageLine]) -> list[UsageLine]:
    return sorted(lines, key=lambda line: (-line.totals.weighted_tokens, line.label))


def period_usage(
    *, project: Project, first_day: date, last_day: date, user_id: int | None = None
) -> PeriodUsage:
    """Usage by member and by model over local days first_day..last_day
    (inclusive); only `user_id`'s when given (what a member may see)."""
    end_day = last_day + timedelta(days=1)
    common = {
        "project_id": project.pk,
        "first_day": first_day,
        "end_day": end_day,
        "user_id": user_id,
    }
    per_user = project_totals(by=("user_id",), **common)  # type: ignore[arg-type]
    per_model = project_totals(by=("model",), **common)  # type: ignore[arg-type]
    names = dict(
        User.objects.filter(
            pk__in=[k[0] for k in per_user if k[0] is not None]
        ).values_list("pk", "username")
    )
    usage = PeriodUsage(first_day=first_day, last_day=last_day)
    usage.by_member = _ordered(
        [
            UsageLine(names.get(user, f"(deleted user {user})"), row)
            for (user,), row in per_user.items()
        ]
    )
    usage.by_model = _ordered(
        [UsageLine(model or "(none)", row) for (model,), row in per_model.items()]
    )
    for line in usage.by_member:
        for name in _SUMS:
            setattr(
                usage.total,
                name,
                getattr(usage.total, name) + getattr(line.totals, name),
            )
    return usage


def daily_use(*, project: Project, first_day: date, end_day: date) -> dict[date, int]:
    rows = project_totals(
        project_id=project.pk, first_day=first_day, end_day=end_day, by=("day",)
    )
    return {day: row.weighted_tokens for (day,), row in rows.items()}


def allocation_history(
    *, project: Project, before: datetime | None = None
) -> QuerySet[AllocationChange]:
    changes = AllocationChange.objects.filter(project=project).select_related(
        "changed_by"
    )
    return changes if before is None else changes.filter(changed_at__lt=before)


def invitation_pending_list(
    *, project: Project, now: datetime
) -> QuerySet[ProjectInvitation]:
    return ProjectInvitation.objects.filter(
        project=project,
        accepted_at__isnull=True,
        declined_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=now,
    ).select_related("user", "invited_by")


def invitation_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_by_token(*, token: str) -> ProjectInvitation | None:
    if not token or len(token) > 200:
        return None
    return (
        ProjectInvitation.objects.select_related(
            "project", "project__pi", "invited_by", "user"
        )
        .filter(token_digest=invitation_token_digest(token))
        .first()
    )


def invitation_is_for(*, invitation: ProjectInvitation, user: User) -> bool:
    """Only the account invited by username, or an account holding the
    invited address verified, may answer an invitation."""
    if invitation.user_id is not None:
        return invitation.user_id == user.pk
    return EmailAddress.objects.filter(
        user=user, email__iexact=invitation.email, verified=True
    ).exists()


def project_keys_for_user(*, project: Project, user: User) -> QuerySet[ApiKey]:
    """The user's keys that bill this project, newest first."""
    return ApiKey.objects.filter(project=project, user=user)
