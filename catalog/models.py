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

# What discovery reads from backends (catalog.discovery) and keeps up to date.
CAPABILITIES = ("chat", "completions", "embeddings", "transcription", "vision")
# What backends do not report: staff declare them (or `addalias`/admin), and
# admission refuses a request that uses one the model is marked as lacking.
DECLARED_CAPABILITIES = ("tools", "json_schema", "audio", "reasoning")
ALL_CAPABILITIES = CAPABILITIES + DECLARED_CAPABILITIES


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

    class Software(models.TextChoices):
        UNKNOWN = "", "unknown (OpenAI-compatible)"
        VLLM = "vllm", "vLLM"
        LLAMACPP = "llamacpp", "llama.cpp"
        OLLAMA = "ollama", "Ollama"
        SGLANG = "sglang", "SGLang"

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
    software = models.CharField(
        max_length=16,
        choices=Software.choices,
        default=Software.UNKNOWN,
        blank=True,
        help_text="What the backend runs. Discovery fills it in when empty; it "
        "decides which native endpoints Portico may use (Ollama's /api/ps for "
        "loaded models, vLLM's and llama.cpp's /tokenize for exact counts).",
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
    supports_tools = models.BooleanField(
        "tools", default=True, help_text="Accepts `tools` (function calling)."
    )
    supports_json_schema = models.BooleanField(
        "JSON schema",
        default=True,
        help_text="Accepts `response_format` of type json_schema.",
    )
    supports_audio = models.BooleanField(
        "audio input", default=False, help_text="Accepts input_audio content parts."
    )
    supports_reasoning = models.BooleanField(
        "reasoning",
        default=False,
        help_text="Thinks before answering (streams reasoning_content).",
    )
    embedding_dimensions = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Length of the vectors an embedding model returns.",
    )
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
    alias_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="aliases",
        help_text="Serve this name with another model's deployments (an alias "
        "has none of its own). It keeps its own access, limits and quota "
        "weight, and takes the target's context window and capabilities.",
    )
    default_params = models.JSONField(
        "default parameters",
        default=dict,
        blank=True,
        help_text="Merged into every request for this model; what the request "
        'itself sets wins. E.g. {"chat_template_kwargs": {"enable_thinking": false}}.',
    )
    system_prompt_prefix = models.TextField(
        blank=True,
        help_text="Put before the request's system message (or sent as one) "
        "in chat requests.",
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
        """What the model does. The declared capabilities qualify generation,
        so an embedding or speech model never lists tools or reasoning."""
        found = {c for c in CAPABILITIES if getattr(self, f"supports_{c}")}
        if found & {"chat", "completions"}:
            found |= {
                c for c in DECLARED_CAPABILITIES if getattr(self, f"supports_{c}")
            }
        return frozenset(found)

    def clean(self) -> None:
        super().clean()
        if not isinstance(self.default_params, dict):
            raise ValidationError(
                {"default_params": 'A JSON object, e.g. {"temperature": 0.6}.'}
            )
        target = self.alias_of
        if target is None:
            return
        if target.pk == self.pk:
            raise ValidationError({"alias_of": "A model cannot be its own alias."})
        if target.alias_of_id is not None:
            raise ValidationError(
                {"alias_of": f"'{target}' is itself an alias: point at its target."}
            )
        if self.pk and self.aliases.exists():
            raise ValidationError(
                {
                    "alias_of": "Other models are aliases of this one; it cannot "
                    "become an alias itself."
                }
            )
        if self.pk and self.deployments.exists():
            raise ValidationError(
                {
                    "alias_of": "An alias has no deployments of its own: remove "
                    "them first."
                }
            )


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
    # Ollama keeps some models in memory and loads others on demand: its
    # /api/ps, read with the health checks, says which. Empty where the
    # backend does not say (every other kind keeps its models loaded).
    loaded = models.BooleanField(
        null=True, blank=True, help_text="In the backend's memory at the last check."
    )
    load_seconds = models.FloatField(
        null=True, blank=True, help_text="How long the last measured load took."
    )
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


# Kept in their own module for size; imported here so that Django registers
# them with this app and callers keep importing them from catalog.models.
from catalog.limitmodels import (  # noqa: E402
    AccessRequest,
    GroupLimits,
    KeyLimits,
    LimitFields,
    UserLimits,
)

__all__ = [
    "AccessRequest",
    "Backend",
    "Deployment",
    "GroupLimits",
    "KeyLimits",
    "LimitFields",
    "Model",
    "UserLimits",
]
