"""Research projects: an allocation of weighted tokens (the weights quotas
use) for a period, granted to a principal investigator and shared by the
project's members, the way HPC centres grant compute."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


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
        (ROLE_PI, "principal investigator"),
        (ROLE_MANAGER, "manager"),
        (ROLE_MEMBER, "member"),
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
