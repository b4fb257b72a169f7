"""Writes for the catalog: registering backends, discovering their models, and
per-key limits.

Discovery runs off the request path (Celery beat, `manage.py discovermodels`,
the admin action, `manage.py addbackend`) and uses httpx; the proxy only ever
sees the result through catalog.selectors.catalog_snapshot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from catalog.backendget import BackendGetFailed, backend_json_get
from catalog.baseurl import base_url_normalise
from catalog.discovery import ModelListInvalid, ReportedModel, model_list_read
from catalog.loadstate import backend_load_state_refresh
from catalog.models import (
    CAPABILITIES,
    Backend,
    Deployment,
    KeyLimits,
    Model,
)

logger = logging.getLogger(__name__)

# A model list is a few KB; a backend answering megabytes is misconfigured.
MODEL_LIST_MAX_BYTES = 5 * 1024 * 1024


@dataclass
class DiscoveryResult:
    backend: str
    ok: bool
    error: str = ""
    served: list[str] = field(default_factory=list)  # public ids, after discovery
    created: list[str] = field(default_factory=list)  # public ids new to the catalog
    gone: list[str] = field(default_factory=list)  # upstream names no longer listed
    skipped: list[str] = field(default_factory=list)  # unusable ids, shown safely


class _DiscoveryFailed(Exception):
    """A backend problem, with a message safe to store and show to staff."""


def backend_add(
    *,
    name: str,
    base_url: str,
    api_key: str | None = None,
    pool: str | None = None,
    max_concurrency: int | None = None,
) -> Backend:
    """Register the backend `name`, or update it if it exists.

    The base URL is normalised (see catalog.baseurl) before it is stored. For
    an existing backend, arguments left as None keep their current values, so
    re-running `addbackend NAME URL` never resets a pool or limit (or clears a
    key) that staff set in admin; a new backend gets pool "shared" and 4.
    A stored key stays with its host, though: moving the backend to another
    scheme, host or port needs `api_key` again (discovery would otherwise
    hand the old host's key to the new one at once).
    Raises ValidationError for a bad name, URL, pool or limit, or a move
    without the key.
    """
    backend = Backend.objects.filter(name=name).first() or Backend(name=name)
    new_url = base_url_normalise(base_url)
    if (
        api_key is None
        and backend.api_key
        and backend_origin_changed(old_url=backend.base_url, new_url=new_url)
    ):
        raise ValidationError(
            f"Backend {name} moves from {_origin_shown(backend.base_url)} to "
            f"{_origin_shown(new_url)}, and its stored API key is never sent to "
            "another host. Pass the API key again (--api-key KEY, or --api-key "
            "'' if the new host needs none)."
        )
    backend.base_url = new_url
    if api_key is not None:
        backend.api_key = api_key
    if pool is not None:
        backend.pool = pool
    if max_concurrency is not None:
        backend.max_concurrency = max_concurrency
    backend.full_clean()
    backend.save()
    return backend


def backend_origin_changed(*, old_url: str, new_url: str) -> bool:
    """True when two base URLs are on different origins (scheme, host, port):
    a backend's key belongs to its origin. A path change keeps the origin."""
    return _origin(old_url) != _origin(new_url)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port or default


def _origin_shown(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def backend_discover_models(
    *, backend: Backend, client: httpx.Client | None = None
) -> DiscoveryResult:
    """Ask `backend` for GET /models and bring the catalog in line with it.

    A backend problem (refused, timeout, HTTP error, not a model list) never
    raises: it is recorded on the backend as unhealthy with a short message
    that contains nothing from the answer (backends put internal URLs and
    tracebacks in error bodies), and the catalog is left as it was. On success
    new models and routes are created, listed ones marked served, and ones no
    longer listed marked not served rather than deleted. Capabilities and limits
    of a model staff have edited (`capabilities_locked`) are never overwritten.
    Ids that cannot be names (catalog.discovery.model_id_problem) are skipped
    and logged, never stored. Then what the backend runs and which models it
    holds in memory (catalog.loadstate), which never changes its health.
    """
    checked_at = timezone.now()
    try:
        payload = _model_list_fetch(backend, client)
        listing = model_list_read(payload)
    except ModelListInvalid:
        error = "The answer to GET /models is not an OpenAI model list"
        return _discovery_failed(backend, error, checked_at)
    except _DiscoveryFailed as failure:
        return _discovery_failed(backend, str(failure), checked_at)
    if listing.skipped:
        logger.warning(
            "Backend %s lists model ids Portico cannot use; skipped: %s",
            backend,
            "; ".join(listing.skipped),
        )
    result = _catalog_apply(backend, listing.models, checked_at)
    result.skipped = listing.skipped
    _health_record(backend, healthy=True, error="", at=checked_at)
    backend_load_state_refresh(backend=backend, listing=payload, client=client)
    return result


def backend_discover_all() -> list[DiscoveryResult]:
    """Discover every enabled backend; one backend's failure never stops the rest."""
    results = []
    with httpx.Client() as client:
        for backend in Backend.objects.filter(enabled=True):
            try:
                results.append(backend_discover_models(backend=backend, client=client))
            except Exception:
                # A bug or a database hiccup while applying one backend's list.
                logger.exception("Model discovery failed for backend %s", backend)
                results.append(
                    DiscoveryResult(
                        backend=backend.name, ok=False, error="internal error"
                    )
                )
    return results


def _model_list_fetch(backend: Backend, client: httpx.Client | None) -> Any:
    try:
        return backend_json_get(
            backend,
            f"{backend.base_url}/models",
            client=client,
            max_bytes=MODEL_LIST_MAX_BYTES,
        )
    except BackendGetFailed as failure:
        if failure.status is not None:
            raise _DiscoveryFailed(_status_message(failure.status)) from None
        message = str(failure)
        if message == "The answer is not JSON":
            message = "The answer to GET /models is not JSON"
        raise _DiscoveryFailed(message) from None


def _status_message(status: int) -> str:
    if status in (401, 403):
        return f"HTTP {status} from the backend: check its API key"
    if status == 404:
        return "HTTP 404 for GET /models: check that the base URL ends in /v1"
    return f"HTTP {status} from the backend"


def _discovery_failed(
    backend: Backend, error: str, checked_at: datetime
) -> DiscoveryResult:
    logger.warning("Model discovery for backend %s failed: %s", backend, error)
    _health_record(backend, healthy=False, error=error, at=checked_at)
    return DiscoveryResult(backend=backend.name, ok=False, error=error)


def _health_record(
    backend: Backend, *, healthy: bool, error: str, at: datetime
) -> None:
    # update() rather than save(): health must not overwrite fields staff are
    # editing in admin at the same moment.
    fields = {"healthy": healthy, "last_checked_at": at, "last_error": error[:300]}
    Backend.objects.filter(pk=backend.pk).update(**fields)
    for name, value in fields.items():
        setattr(backend, name, value)


@transaction.atomic
def _catalog_apply(
    backend: Backend, reported: list[ReportedModel], seen_at: datetime
) -> DiscoveryResult:
    result = DiscoveryResult(backend=backend.name, ok=True)
    routes = {d.upstream_model: d for d in backend.deployments.select_related("model")}
    models: dict[int, Model] = {}
    changes: dict[int, dict[str, Any]] = {}
    for item in reported:
        deployment = routes.get(item.id) or _route_create(backend, item, result)
        if deployment is None:
            continue
        model = deployment.model
        models[model.pk] = model
        wanted = changes.setdefault(model.pk, {})
        if item.capabilities_reported:
            wanted |= {f"supports_{c}": c in item.capabilities for c in CAPABILITIES}
        if item.max_output_tokens:
            wanted["max_output_tokens"] = item.max_output_tokens
        deployment.served = True
        deployment.last_seen_at = seen_at
        deployment.reported_context_window = item.context_window
        if deployment.pk is None:
            deployment.save()
        else:
            # Only discovery's fields: `enabled` belongs to staff.
            deployment.save(update_fields=[*_DISCOVERED_ROUTE_FIELDS, "updated_at"])
        result.served.append(model.public_id)
    listed = {item.id for item in reported}
    for upstream, deployment in routes.items():
        if upstream not in listed and deployment.served:
            deployment.served = False
            deployment.save(update_fields=["served", "updated_at"])
            models[deployment.model.pk] = deployment.model
            result.gone.append(upstream)
    for pk, model in models.items():
        wanted = changes.get(pk, {})
        window = _context_window_reported(model)
        if window:
            wanted["context_window"] = window
        _model_update_unless_locked(model, wanted)
    result.served.sort()
    return result


_DISCOVERED_ROUTE_FIELDS = ("served", "last_seen_at", "reported_context_window")


def _route_create(
    backend: Backend, item: ReportedModel, result: DiscoveryResult
) -> Deployment | None:
    model, created = Model.objects.get_or_create(
        public_id=item.id,
        defaults={
            "context_window": item.context_window
            or settings.MODEL_DEFAULT_CONTEXT_WINDOW,
            **{f"supports_{c}": c in item.capabilities for c in CAPABILITIES},
        },
    )
    if created:
        result.created.append(model.public_id)
    if Deployment.objects.filter(model=model, backend=backend).exists():
        # Staff already route this model to another upstream name here.
        return None
    return Deployment(model=model, backend=backend, upstream_model=item.id)


def _context_window_reported(model: Model) -> int | None:
    """The smallest window any serving backend reports: a request that fits it
    fits whichever backend the proxy picks."""
    reported = Deployment.objects.filter(
        model=model,
        enabled=True,
        served=True,
        backend__enabled=True,
        reported_context_window__isnull=False,
    ).values_list("reported_context_window", flat=True)
    return min(reported, default=None)


def _model_update_unless_locked(model: Model, wanted: dict[str, Any]) -> None:
    changed = {k: v for k, v in wanted.items() if getattr(model, k) != v}
    if not changed or model.capabilities_locked:
        return
    # The lock is re-checked in the UPDATE itself: staff who saved a correction
    # while discovery ran keep it.
    Model.objects.filter(pk=model.pk, capabilities_locked=False).update(
        **changed, updated_at=timezone.now()
    )


def key_limits_set(*, key: Any, rpm: int | None, tpm: int | None) -> KeyLimits:
    """Give one API key its own requests/tokens per minute (None keeps the
    current value; 0 means unlimited). The proxy picks the change up within
    LIMITS_REFRESH_SECONDS."""
    for name, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and value < 0:
            raise ValidationError(f"{name} must be 0 (unlimited) or more.")
    limits, _ = KeyLimits.objects.get_or_create(key=key)
    if rpm is not None:
        limits.rpm = rpm
    if tpm is not None:
        limits.tpm = tpm
    limits.save()
    return limits
