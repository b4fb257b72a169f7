"""The operator's console for the catalog: backends, models and their routes."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from catalog.baseurl import base_url_normalise
from catalog.models import Backend, Deployment, Model
from catalog.services import backend_discover_models, backend_origin_changed

# Staff edits to these stick: discovery stops updating them (capabilities_locked).
STAFF_OWNED_FIELDS = frozenset(
    {
        "context_window",
        "max_output_tokens",
        "supports_chat",
        "supports_completions",
        "supports_embeddings",
        "supports_transcription",
        "supports_vision",
        "supports_tools",
        "supports_json_schema",
        "supports_audio",
        "supports_reasoning",
        "embedding_dimensions",
    }
)


class BackendForm(forms.ModelForm):
    # Write-only: the stored key is never put back into the page.
    api_key = forms.CharField(
        label="API key",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current key. Stored encrypted.",
    )
    clear_api_key = forms.BooleanField(
        label="Remove the API key", required=False, initial=False
    )

    class Meta:
        model = Backend
        fields = [
            "name",
            "base_url",
            "api_key",
            "enabled",
            "pool",
            "max_concurrency",
            "software",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The bound instance's key must not be the form's initial value either.
        self.initial.pop("api_key", None)
        self._stored_api_key = self.instance.api_key
        self._stored_base_url = self.instance.base_url

    def clean_base_url(self) -> str:
        return base_url_normalise(self.cleaned_data["base_url"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # A key stays with its host (as in catalog.services.backend_add): a
        # backend moved elsewhere must be given its key again, or none.
        new_url = cleaned.get("base_url")
        if (
            self._stored_api_key
            and new_url
            and not cleaned.get("api_key")
            and not cleaned.get("clear_api_key")
            and backend_origin_changed(old_url=self._stored_base_url, new_url=new_url)
        ):
            self.add_error(
                "api_key",
                "The base URL now points at another host, and the stored key is "
                "never sent there. Enter the key for the new host, or tick "
                "“Remove the API key” if it needs none.",
            )
        return cleaned

    def save(self, commit: bool = True) -> Backend:
        backend: Backend = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            backend.api_key = ""
        elif not self.cleaned_data.get("api_key"):
            # Empty field: keep what is stored (the form had set it to "").
            backend.api_key = self._stored_api_key
        if commit:
            backend.save()
        return backend


class DeploymentInline(admin.TabularInline):
    model = Deployment
    extra = 0
    fields = [
        "backend",
        "upstream_model",
        "enabled",
        "served",
        "loaded",
        "load_seconds",
        "last_seen_at",
    ]
    readonly_fields = ["served", "loaded", "load_seconds", "last_seen_at"]
    autocomplete_fields = ["backend"]


@admin.register(Backend)
class BackendAdmin(admin.ModelAdmin):
    form = BackendForm
    list_display = [
        "name",
        "base_url",
        "enabled",
        "pool",
        "max_concurrency",
        "healthy",
        "last_checked_at",
        "last_error",
        "has_api_key",
    ]
    list_filter = ["enabled", "healthy", "pool"]
    search_fields = ["name", "base_url"]
    readonly_fields = ["healthy", "last_checked_at", "last_error"]
    fieldsets = [
        (None, {"fields": ["name", "base_url", "api_key", "clear_api_key"]}),
        ("Serving", {"fields": ["enabled", "pool", "max_concurrency", "software"]}),
        ("Health", {"fields": ["healthy", "last_checked_at", "last_error"]}),
    ]
    actions = ["refresh_discovery"]

    def save_model(
        self, request: HttpRequest, obj: Backend, form: forms.ModelForm, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        # A new or re-pointed backend is asked for its models at once, as
        # `addbackend` does, instead of waiting for the schedule.
        if not change or {"base_url", "api_key", "enabled"} & set(form.changed_data):
            self._discovery_report(request, obj)

    @admin.display(boolean=True, description="API key")
    def has_api_key(self, backend: Backend) -> bool:
        return bool(backend.api_key)

    @admin.action(description="Refresh discovery (ask for GET /v1/models now)")
    def refresh_discovery(
        self, request: HttpRequest, queryset: QuerySet[Backend]
    ) -> None:
        for backend in queryset:
            self._discovery_report(request, backend)

    def _discovery_report(self, request: HttpRequest, backend: Backend) -> None:
        result = backend_discover_models(backend=backend)
        if result.ok:
            new = f", new: {', '.join(result.created)}" if result.created else ""
            message = f"{backend}: {len(result.served)} model(s) served{new}"
            if result.skipped:
                message += (
                    f"; {len(result.skipped)} unusable model id(s) skipped "
                    "(the log says which and why)"
                )
            self.message_user(request, message, messages.SUCCESS)
        else:
            message = f"{backend}: unreachable: {result.error}"
            self.message_user(request, message, messages.ERROR)


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "display_name",
        "alias_of",
        "enabled",
        "everyone",
        "context_window",
        "supports_chat",
        "supports_completions",
        "supports_embeddings",
        "supports_transcription",
        "supports_vision",
        "supports_tools",
        "supports_reasoning",
        "capabilities_locked",
        "quota_weight",
    ]
    list_filter = [
        "enabled",
        "everyone",
        ("alias_of", admin.EmptyFieldListFilter),
        "supports_chat",
        "supports_embeddings",
        "supports_transcription",
        "supports_vision",
        "capabilities_locked",
        "access_groups",
        "deployments__backend",
    ]
    search_fields = ["public_id", "display_name", "deployments__upstream_model"]
    filter_horizontal = ["access_groups"]
    inlines = [DeploymentInline]
    fieldsets = [
        (None, {"fields": ["public_id", "display_name", "enabled"]}),
        ("Access", {"fields": ["everyone", "access_groups"]}),
        (
            "Capabilities and limits",
            {
                "fields": [
                    "supports_chat",
                    "supports_completions",
                    "supports_embeddings",
                    "supports_transcription",
                    "supports_vision",
                    "supports_tools",
                    "supports_json_schema",
                    "supports_audio",
                    "supports_reasoning",
                    "embedding_dimensions",
                    "context_window",
                    "max_output_tokens",
                    "capabilities_locked",
                ]
            },
        ),
        ("Use", {"fields": ["recommended_params", "quota_weight"]}),
        (
            "Alias and request defaults",
            {
                "fields": ["alias_of", "default_params", "system_prompt_prefix"],
                "description": "An alias serves its target's deployments under "
                "this name (and takes the target's capabilities and context "
                "window). Default parameters apply to any model.",
            },
        ),
    ]
    autocomplete_fields = ["alias_of"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Model]:
        # Filtering on deployments__backend joins: keep one row per model.
        return super().get_queryset(request).distinct()

    def save_model(
        self, request: HttpRequest, obj: Model, form: forms.ModelForm, change: bool
    ) -> None:
        changed = set(form.changed_data)
        # Unticking "keep staff edits" is honoured; any other edit of these
        # fields locks them against the next discovery.
        if changed & STAFF_OWNED_FIELDS and "capabilities_locked" not in changed:
            obj.capabilities_locked = True
        super().save_model(request, obj, form, change)


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["model", "backend", "upstream_model", "enabled", "served"]
    list_filter = ["enabled", "served", "backend"]
    search_fields = ["model__public_id", "upstream_model", "backend__name"]
    autocomplete_fields = ["model", "backend"]
    list_select_related = ["model", "backend"]


# Limits, service classes and access requests live in their own module.
from catalog import admin_limits  # noqa: E402, F401
