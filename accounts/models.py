from datetime import datetime

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from accounts.keyformat import key_display


class User(AbstractUser):
    """A researcher or operator.

    `pending_approval` marks accounts created while registration needs approval:
    they stay inactive until staff approve them, which keeps them apart from
    accounts that staff deactivated on purpose.
    """

    pending_approval = models.BooleanField(
        default=False,
        help_text="Signed up while registration needs approval; "
        "inactive until approved.",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    # An IANA zone name chosen in Settings > Account; empty: the browser's
    # (portal.timezones). Times and key expiry days are shown and read in it.
    # db_default: rows inserted by code that predates the column (a rolling
    # upgrade) get "" too.
    time_zone = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            models.UniqueConstraint(
                models.functions.Lower("email"),
                condition=~models.Q(email=""),
                name="accounts_user_email_ci_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.username


class ApiKey(models.Model):
    """A user's key for the OpenAI-compatible API.

    The raw key is never stored: only its lookup id (the unique index a presented
    key is found by) and the SHA-256 digest of the whole key, plus the first and
    last characters that pages show (`sk-ptc_…abcd`). `allowed_models` is a list
    of public model ids, or null for every model the user may use.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    lookup_id = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    prefix = models.CharField(max_length=24)
    last4 = models.CharField(max_length=4)
    allowed_models = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # A project key bills its project's allocation (projects sits above
    # accounts: referenced by name, never imported).
    project = models.ForeignKey(
        "projects.Project",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="api_keys",
    )
    rolled_from = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="rolled_into",
        help_text="The key this one replaced when it was rolled.",
    )

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.display})"

    @property
    def display(self) -> str:
        return key_display(prefix=self.prefix, last4=self.last4)

    def state_at(self, now: datetime) -> str:
        """active, revoked or expired; a rolled key in its grace period is active."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    @property
    def state(self) -> str:
        return self.state_at(timezone.now())


class KeyGeneration(models.Model):
    """The revocation signal of portals without Redis: one row holding a
    random token, changed in the same transaction as any revocation. Every
    server process reads it at most once a second (accounts.keysignal); with
    Redis the token lives there instead and this row is not used."""

    token = models.CharField(max_length=32)
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"key generation {self.token[:8]}"
