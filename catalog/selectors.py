"""Reads for the catalog: what a user may call, and the proxy's snapshot."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from accounts.selectors import principal_for_user
from catalog.access import limits_effective, models_for
from catalog.models import (
    AccessRequest,
    Backend,
    Deployment,
    GroupLimits,
    KeyLimits,
    Model,
    UserLimits,
)
from catalog.snapshot import CatalogModel, LimitTables, Route


def _live_routes() -> QuerySet[Deployment]:
    return Deployment.objects.filter(enabled=True, served=True, backend__enabled=True)


def model_available_list() -> QuerySet[Model]:
    """Enabled models with at least one enabled, served route on an enabled
    backend, whoever asks; and enabled aliases of such models. Health is not a
    filter: an unhealthy backend may be back by the time a request arrives,
    and the proxy decides per request."""
    live = _live_routes().filter(model=OuterRef("pk"))
    live_target = _live_routes().filter(model=OuterRef("alias_of"))
    return (
        Model.objects.filter(enabled=True)
        .annotate(route_live=Exists(live), target_live=Exists(live_target))
        .filter(
            Q(alias_of__isnull=True, route_live=True)
            | Q(alias_of__enabled=True, target_live=True)
        )
    )


def models_for_user(*, user: Any) -> list[CatalogModel]:
    """The models `user` may call through the browser or a key without an
    allowlist: the access rule (catalog.access) over a fresh snapshot, so
    pages offer exactly what the proxy admits. Staff get no exception: access
    is a policy decision made in admin, not a privilege of the admin role."""
    if not getattr(user, "is_active", False):
        return []
    models = {model.public_id: model for model in catalog_snapshot()}
    principal = principal_for_user(user=user)
    return models_for(principal, models=models, tables=limit_tables())


def model_ids_for_user(user: Any) -> list[str]:
    """Public ids of `models_for_user`, for the key form's allowlist."""
    return [model.public_id for model in models_for_user(user=user)]


def catalog_snapshot() -> list[CatalogModel]:
    """Every available model with its live routes and allowed groups, as frozen
    plain data (catalog.snapshot). Five queries whatever the catalog's size;
    backend API keys are decrypted once per backend.

    An alias takes its target's routes, context window, output limit and
    capabilities (what the deployments can do) and keeps its own access,
    weight, display name and default parameters."""
    backends = {b.pk: b for b in Backend.objects.filter(enabled=True)}
    models = model_available_list().prefetch_related(
        Prefetch(
            "deployments",
            queryset=_live_routes().order_by("backend__name"),
            to_attr="live_routes",
        ),
        Prefetch(
            "alias_of__deployments",
            queryset=_live_routes().order_by("backend__name"),
            to_attr="live_routes",
        ),
        Prefetch("access_groups", queryset=Group.objects.only("pk")),
    )
    owned_by = settings.SITE_NAME
    return [_catalog_model(model, backends, owned_by) for model in models]


def _catalog_model(
    model: Model, backends: dict[int, Backend], owned_by: str
) -> CatalogModel:
    served = model.alias_of or model
    return CatalogModel(
        public_id=model.public_id,
        context_window=served.context_window,
        max_output_tokens=served.max_output_tokens,
        capabilities=served.capabilities,
        everyone=model.everyone,
        group_ids=frozenset(group.pk for group in model.access_groups.all()),
        routes=tuple(
            _route(backends[d.backend_id], d)
            for d in served.live_routes
            if d.backend_id in backends
        ),
        created=int(model.created_at.timestamp()),
        owned_by=owned_by,
        display_name=model.display_name or model.public_id,
        quota_weight=float(model.quota_weight),
        # An alias without recommendations of its own shows its target's.
        recommended_params=dict(
            model.recommended_params or served.recommended_params or {}
        ),
        alias_of=served.public_id if model.alias_of_id else "",
        default_params=dict(model.default_params or {}),
        system_prompt_prefix=model.system_prompt_prefix,
        embedding_dimensions=served.embedding_dimensions,
    )


def _route(backend: Backend, deployment: Deployment) -> Route:
    return Route(
        backend_id=backend.pk,
        backend_name=backend.name,
        base_url=backend.base_url,
        api_key=backend.api_key or None,
        upstream_model=deployment.upstream_model,
        max_concurrency=backend.max_concurrency,
        healthy=backend.healthy,
        pool=backend.pool,
        software=backend.software,
        loaded=deployment.loaded,
        load_seconds=deployment.load_seconds,
    )


def backend_get(*, name: str) -> Backend | None:
    return Backend.objects.filter(name=name).first()


def limit_tables() -> LimitTables:
    """Every limit override, as plain dicts for the proxy's cache (small tables:
    one row per group, user or key that has an override)."""
    groups = GroupLimits.objects.values_list(
        "group_id", "rpm", "tpm", "dedicated_access", "requestable"
    )
    return LimitTables(
        users={
            u: (r, t)
            for u, r, t in UserLimits.objects.values_list("user_id", "rpm", "tpm")
        },
        groups={g: (r, t) for g, r, t, _, _ in groups},
        keys={
            k: (r, t)
            for k, r, t in KeyLimits.objects.values_list("key_id", "rpm", "tpm")
        },
        dedicated_groups=frozenset(g for g, _, _, dedicated, _ in groups if dedicated),
        requestable_groups=frozenset(g for g, *_, requestable in groups if requestable),
    )


def access_classes_for_user(*, user: Any) -> list[dict[str, Any]]:
    """The service classes a user may ask for, with where the user stands:
    member, waiting, or free to ask (and the last decision, if any)."""
    member_of = set(user.groups.values_list("pk", flat=True))
    latest: dict[int, AccessRequest] = {}
    for request in AccessRequest.objects.filter(user=user).order_by("created_at"):
        latest[request.group_id] = request
    classes = []
    for limits in GroupLimits.objects.filter(requestable=True).select_related("group"):
        request = latest.get(limits.group_id)
        classes.append(
            {
                "group": limits.group,
                "limits": limits,
                "member": limits.group_id in member_of,
                "pending": request is not None
                and request.state == AccessRequest.State.PENDING,
                "last_request": request,
            }
        )
    for entry in classes:
        # A class already held or asked for is not offered again.
        entry["offered"] = not (entry["member"] or entry["pending"])
    return classes


def access_standing_for_user(*, user: Any) -> dict[str, Any]:
    """What Settings > Access shows above the classes: the rate limits that
    apply to the user now (0: unlimited) and the service classes held."""
    group_ids = tuple(user.groups.values_list("pk", flat=True))
    rpm, tpm = limits_effective(limit_tables(), user.pk, group_ids)
    held = Group.objects.filter(pk__in=group_ids, portico_limits__isnull=False)
    return {
        "rpm": rpm,
        "tpm": tpm,
        "classes": list(held.order_by("name").values_list("name", flat=True)),
    }
