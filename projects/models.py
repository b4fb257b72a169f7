"""Research projects: an allocation of weighted tokens (the weights quotas
use) for a period, granted to a principal investigator and shared by the
project's members, the way HPC centres grant compute."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Project(models.Model):
    name = models.CharField(max_length=100, unique=True)
    pi = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="projects_led",
        verbose_name="principal investigator",
    )
    allocation_tokens = models.PositiveBigIntegerField(
        help_text="Weighted tokens for the whole period (the weights quotas use)."
    )
    starts_on = models.DateField(default=timezone.localdate)
    ends_on = models.DateField(help_text="The last day the allocation may be used.")
    monthly_instalments = models.BooleanField(
        default=False,
        help_text="Split the allocation evenly over the calendar months of the "
        "period; what a month leaves unused does not carry over.",
    )
    member_cap_tokens = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="The most one member may use per allocation window (empty: no cap).",
    )
    dedicated = models.BooleanField(
        default=False,
        help_text="While the project runs, its keys use the dedicated service class.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValidationError({"ends_on": "The end date is before the start."})


class ProjectMembership(models.Model):
    ROLE_PI = "pi"
    ROLE_MANAGER = "manager"
    ROLE_MEMBER = "member"
    ROLES = [
        (ROLE_PI, _("principal investigator")),
        (ROLE_MANAGER, _("manager")),
        (ROLE_MEMBER, _("member")),
    ]

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="project_memberships",
    )
    role = models.CharField(max_length=8, choices=ROLES, default=ROLE_MEMBER)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "user"], name="projects_one_membership"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class AllocationChange(models.Model):
    """Every grant and change of a project's allocation, kept for good."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="allocation_history"
    )
    allocation_tokens = models.PositiveBigIntegerField()
    starts_on = models.DateField()
    ends_on = models.DateField()
    member_cap_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.CharField(max_length=300, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-changed_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.project}: {self.allocation_tokens:,} tokens to {self.ends_on}"


class ProjectInvitation(models.Model):
    """An offer to join a project, sent by its PI or a manager as a link.

    Only a digest of the link's token is kept (the link itself goes out by
    e-mail and is shown once to whoever sent it). An invitation names either
    an account (by username) or an e-mail address; only that account, or an
    account holding that address verified, may accept it."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="invitations"
    )
    token_digest = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="project_invitations",
        help_text="The account invited by username (empty: by e-mail).",
    )
    email = models.EmailField(blank=True)
    role = models.CharField(
        max_length=8,
        choices=ProjectMembership.ROLES,
        default=ProjectMembership.ROLE_MEMBER,
    )
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    declined_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False) | ~models.Q(email=""),
                name="projects_invitation_names_someone",
            )
        ]

    def __str__(self) -> str:
        return f"{self.invitee} to {self.project} ({self.role})"

    @property
    def invitee(self) -> str:
        return self.user.get_username() if self.user_id else self.email  # type: ignore[union-attr]

    def state_at(self, now: datetime) -> str:
        """pending, accepted, declined, revoked or expired."""
        if self.accepted_at is not None:
            return "accepted"
        if self.declined_at is not None:
            return "declined"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "pending"


class AllocationRequest(models.Model):
    """A request for a new project (no `project`) or for more of one, decided
    by staff, who set what is granted; the PI hears by e-mail."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REFUSED = "refused", "Refused"

    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="allocation_requests",
    )
    project = models.ForeignKey(
        Project,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="allocation_requests",
        help_text="Empty: a request for a new project.",
    )
    name = models.CharField(
        max_length=100, blank=True, help_text="A new project's name."
    )
    tokens = models.PositiveBigIntegerField(help_text="Weighted tokens asked for.")
    ends_on = models.DateField(help_text="Until when.")
    justification = models.TextField()
    state = models.CharField(
        max_length=10, choices=State.choices, default=State.PENDING, db_index=True
    )
    # What staff grant (filled in admin before approving; defaults: as asked).
    granted_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    granted_starts_on = models.DateField(null=True, blank=True)
    granted_ends_on = models.DateField(null=True, blank=True)
    granted_dedicated = models.BooleanField(
        default=False, help_text="The project's keys use the dedicated service class."
    )
    staff_note = models.TextField(blank=True, help_text="Sent with the decision.")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        what = self.project.name if self.project_id else f"new project {self.name}"
        return f"{self.requester} asks {self.tokens:,} tokens for {what}"
