"""Reads for the catalog: what a user may call, and the proxy's snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from catalog.models import Backend, Deployment, Model
from catalog.snapshot import CatalogModel, Route

if TYPE_CHECKING:
    from apiproxy.limits import LimitTables


def _live_routes() -> QuerySet[Deployment]:
    return Deployment.objects.filter(enabled=True, served=True, backend__enabled=True)


def model_available_list() -> QuerySet[Model]:
    """Enabled models with at least one enabled, served route on an enabled
    backend, whoever asks. Health is not a filter: an unhealthy backend may be
    back by the time a request arrives, and the proxy decides per request."""
    live = _live_routes().filter(model=OuterRef("pk"))
    return Model.objects.filter(enabled=True).filter(Exists(live))


def model_list_for_user(*, user: Any) -> QuerySet[Model]:
    """The models `user` may call: available, and open to everyone or to one
    of the user's groups. Staff get no exception: access is a policy decision
    made in admin, not a privilege of the admin role."""
    if not getattr(user, "is_active", False):
        return Model.objects.none()
    member = Model.access_groups.through.objects.filter(
        model_id=OuterRef("pk"), group__user=user
    )
    return model_available_list().filter(Q(everyone=True) | Exists(member))


def model_get_for_user(*, user: Any, public_id: str) -> Model | None:
    return model_list_for_user(user=user).filter(public_id=public_id).first()


def catalog_snapshot() -> list[CatalogModel]:
    """Every available model with its live routes and allowed groups, as frozen
    plain data (catalog.snapshot). Four queries whatever the catalog's size;
    backend API keys are decrypted once per backend."""
    backends = {b.pk: b for b in Backend.objects.filter(enabled=True)}
    models = model_available_list().prefetch_related(
        Prefetch(
            "deployments",
            queryset=_live_routes().order_by("backend__name"),
            to_attr="live_routes",
        ),
        Prefetch("access_groups", queryset=Group.objects.only("pk")),
    )
    owned_by = settings.SITE_NAME
    return [
        CatalogModel(
            public_id=model.public_id,
            context_window=model.context_window,
            max_output_tokens=model.max_output_tokens,
            capabilities=model.capabilities,
            everyone=model.everyone,
            group_ids=frozenset(group.pk for group in model.access_groups.all()),
            routes=tuple(
                _route(backends[d.backend_id], d)
                for d in model.live_routes
                if d.backend_id in backends
            ),
            created=int(model.created_at.timestamp()),
            owned_by=owned_by,
            display_name=model.display_name or model.public_id,
            quota_weight=float(model.quota_weight),
            recommended_params=dict(model.recommended_params or {}),
        )
        for model in models
    ]


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
    )


def backend_get(*, name: str) -> Backend | None:
    return Backend.objects.filter(name=name).first()


def limit_tables() -> LimitTables:
    """Every limit override, as plain dicts for the proxy's cache (small tables:
    one row per group, user or key that has an override)."""
    from apiproxy.limits import LimitTables
    from catalog.models import GroupLimits, KeyLimits, UserLimits

    groups = GroupLimits.objects.values_list(
        "group_id", "rpm", "tpm", "dedicated_access"
    )
    return LimitTables(
        users={
            u: (r, t)
            for u, r, t in UserLimits.objects.values_list("user_id", "rpm", "tpm")
        },
        groups={g: (r, t) for g, r, t, _ in groups},
        keys={
            k: (r, t)
            for k, r, t in KeyLimits.objects.values_list("key_id", "rpm", "tpm")
        },
        dedicated_groups=frozenset(g for g, _, _, dedicated in groups if dedicated),
    )


def access_classes_for_user(*, user: Any) -> list[dict[str, Any]]:
    """The service classes a user may ask for, with where the user stands:
    member, waiting, or free to ask (and the last decision, if any)."""
    from catalog.models import AccessRequest, GroupLimits

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
    return classes
