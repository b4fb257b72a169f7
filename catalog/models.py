"""The catalog: backends (OpenAI-speaking servers), models, and the routes
(deployments) that say which backend serves which model under which name.

Discovery fills these from each backend's GET /v1/models; staff correct them in
admin. The proxy never reads them directly: it works from a snapshot
(catalog.selectors.catalog_snapshot) refreshed off the request path.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from catalog.baseurl import base_url_validate
from catalog.crypto import EncryptedTextField
from catalog.discovery import model_id_problem

CAPABILITIES = ("chat", "completions", "embeddings", "transcription", "vision")


def model_id_validate(value: str) -> None:
    """The rule discovery applies to ids backends list (catalog.discovery),
    for names staff type in admin too: they reach pages, logs and SSE lines."""
    problem = model_id_problem(value)
    if problem:
        raise ValidationError(f"This model id is not usable: {problem}.")


def context_window_default() -> int:
    return settings.MODEL_DEFAULT_CONTEXT_WINDOW


class Backend(models.Model):
    class Pool(models.TextChoices):
        SHARED = "shared", "shared"
        DEDICATED = "dedicated", "dedicated"

    name = models.CharField(
        max_length=64,
        unique=True,
        validators=[
            RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", "Letters, digits, . _ -")
        ],
        help_text="Short name used on the command line, e.g. gpu01.",
    )
    base_url = models.CharField(
        "base URL",
        max_length=500,
        validators=[base_url_validate],
        help_text="As for the OpenAI SDK, ending in /v1: http://gpu01:8000/v1",
    )
    api_key = EncryptedTextField(
        "API key",
        blank=True,
        default="",
        help_text="Sent as a Bearer token to the backend. Stored encrypted.",
    )
    enabled = models.BooleanField(default=True)
    pool = models.CharField(
        max_length=16,
        choices=Pool.choices,
        default=Pool.SHARED,
        help_text="Dedicated: reserved capacity, used by groups with dedicated "
        "access (group limits).",
    )
    max_concurrency = models.PositiveIntegerField(
        default=4,
        validators=[MinValueValidator(1)],
        help_text="Requests in flight per model on this backend; more wait.",
    )
    # Health as of the last discovery; optimistic until the first one.
    healthy = models.BooleanField(default=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "apiproxy_backend"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Model(models.Model):
    """A model as users name it in API calls (`public_id`)."""

    public_id = models.CharField(
        "model id",
        max_length=200,
        unique=True,
        validators=[model_id_validate],
        help_text="The name users pass as `model`.",
    )
    display_name = models.CharField(max_length=200, blank=True)
    context_window = models.PositiveIntegerField(
        default=context_window_default, validators=[MinValueValidator(1)]
    )
    max_output_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests asking for more are clamped."
    )
    supports_chat = models.BooleanField("chat", default=True)
    supports_completions = models.BooleanField("completions", default=True)
    supports_embeddings = models.BooleanField("embeddings", default=False)
    supports_transcription = models.BooleanField("transcription", default=False)
    supports_vision = models.BooleanField("vision", default=False)
    capabilities_locked = models.BooleanField(
        "keep staff edits",
        default=False,
        help_text="Set when staff edit capabilities or limits: discovery then "
        "leaves capabilities, context window and max output tokens alone.",
    )
    enabled = models.BooleanField(default=True)
    everyone = models.BooleanField(
        "open to everyone",
        default=True,
        help_text="Otherwise only members of the access groups may use it.",
    )
    access_groups = models.ManyToManyField(
        "auth.Group", blank=True, related_name="catalog_models"
    )
    recommended_params = models.JSONField(
        "recommended sampling parameters",
        default=dict,
        blank=True,
        help_text='Shown to users and used by the chat, e.g. {"temperature": 0.7}.',
    )
    quota_weight = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Tokens on this model count this many times against quotas.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "apiproxy_model"
        ordering = ["public_id"]

    def __str__(self) -> str:
        return self.public_id

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(c for c in CAPABILITIES if getattr(self, f"supports_{c}"))


class Deployment(models.Model):
    """A route: `backend` serves `model` under the name `upstream_model`."""

    model = models.ForeignKey(
        Model, on_delete=models.CASCADE, related_name="deployments"
    )
    backend = models.ForeignKey(
        Backend, on_delete=models.CASCADE, related_name="deployments"
    )
    upstream_model = models.CharField(
        max_length=200, help_text="The model name this backend expects."
    )
    enabled = models.BooleanField(default=True)
    # Discovery's view, kept apart from the staff switch above: a model the
    # backend stopped listing is marked not served, never deleted (usage
    # history points at it, and it comes back when the backend lists it again).
    served = models.BooleanField(
        default=True, help_text="Listed by the backend at the last discovery."
    )
    reported_context_window = models.PositiveIntegerField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "apiproxy_deployment"
        ordering = ["model__public_id", "backend__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "backend"], name="apiproxy_deployment_model_backend"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model} on {self.backend}"


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
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REFUSED = "refused", "Refused"

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
