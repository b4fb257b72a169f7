"""Limits, service classes and access requests: the catalog's access side
(re-exported by catalog.models, where Django and callers find them)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class LimitFields(models.Model):
    """Requests and tokens per minute. Empty inherits (key -> user -> groups ->
    site default); 0 means unlimited."""

    rpm = models.PositiveIntegerField(
        "requests per minute",
        null=True,
        blank=True,
        help_text="Empty: inherit. 0: unlimited.",
    )
    tpm = models.PositiveIntegerField(
        "tokens per minute",
        null=True,
        blank=True,
        help_text="Empty: inherit. 0: unlimited.",
    )

    class Meta:
        abstract = True


class GroupLimits(LimitFields):
    """A group's default limits for its members (the most generous of a
    user's groups applies), and whether it holds the dedicated service class."""

    group = models.OneToOneField(
        "auth.Group", on_delete=models.CASCADE, related_name="portico_limits"
    )
    dedicated_access = models.BooleanField(
        default=False,
        help_text="Members are routed to the dedicated backend pool where a "
        "model has one (the performance class).",
    )
    requestable = models.BooleanField(
        default=False,
        help_text="Users may ask to join this group from Settings > Access.",
    )
    description = models.TextField(
        blank=True, help_text="What membership offers, shown to users who may ask."
    )

    class Meta:
        db_table = "apiproxy_grouplimits"
        verbose_name = verbose_name_plural = "group limits and classes"

    def __str__(self) -> str:
        return f"limits of {self.group}"


class UserLimits(LimitFields):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="limits"
    )

    class Meta:
        db_table = "apiproxy_userlimits"
        verbose_name = verbose_name_plural = "user limits"

    def __str__(self) -> str:
        return f"limits of {self.user}"


class KeyLimits(LimitFields):
    key = models.OneToOneField(
        "accounts.ApiKey", on_delete=models.CASCADE, related_name="limits"
    )

    class Meta:
        db_table = "apiproxy_keylimits"
        verbose_name = verbose_name_plural = "key limits"

    def __str__(self) -> str:
        return f"limits of {self.key}"


class AccessRequest(models.Model):
    """A user's request to join a service class (a requestable group)."""

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPROVED = "approved", _("Approved")
        REFUSED = "refused", _("Refused")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="access_requests",
    )
    group = models.ForeignKey(
        "auth.Group", on_delete=models.CASCADE, related_name="access_requests"
    )
    use_case = models.TextField()
    models_wanted = models.CharField("models", max_length=500, blank=True)
    expected_volume = models.CharField(max_length=200, blank=True)
    state = models.CharField(
        max_length=10, choices=State.choices, default=State.PENDING, db_index=True
    )
    staff_note = models.TextField(
        blank=True, help_text="Sent to the user with the decision."
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "apiproxy_accessrequest"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "group"],
                condition=models.Q(state="pending"),
                name="apiproxy_one_pending_request_per_class",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} asks for {self.group} ({self.state})"
