"""Who may use which model: the one access rule.

Every place that offers or admits a model asks here: GET /v1/models and
/v1/models/{id}, admission of every request through both doors, the chat's
model picker and the key form's allowlist. The rule reads frozen snapshots
only (catalog.snapshot), so the proxy can call it per request and a page can
call it over a snapshot it just built.

A model is usable by a principal when all of these hold:
- the model is open to everyone or to one of the principal's groups;
- the key (if any) allows it;
- it has a route in the principal's service class: members of a class with
  dedicated access may use dedicated and shared routes, everyone else the
  shared ones only (the dedicated pool is reserved).

A model that is not usable is, to the caller, the same as one that does not
exist, unless the user could become able to use it by joining a class that
users may ask for (Settings > Access): then, and only for the model the user
named, the refusal says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings

from accounts.selectors import Principal
from catalog.snapshot import CatalogModel, LimitTables, Route


def routes_for_class(
    routes: tuple[Route, ...], *, dedicated: bool
) -> tuple[Route, ...]:
    """The routes of a service class. Dedicated members prefer dedicated
    routes and fall back to shared ones while no dedicated route is healthy."""
    shared = tuple(r for r in routes if r.pool != "dedicated")
    if not dedicated:
        return shared
    own = tuple(r for r in routes if r.pool == "dedicated")
    return own if any(r.healthy for r in own) else own + shared


def service_class_dedicated(principal: Principal, tables: LimitTables) -> bool:
    """Whether the principal holds the dedicated (performance) class: through
    a group, or through the running project its key bills."""
    return principal.dedicated or not tables.dedicated_groups.isdisjoint(
        principal.group_ids
    )


def model_usable(model: CatalogModel, principal: Principal, *, dedicated: bool) -> bool:
    return (
        model.allowed_for(principal.group_ids)
        and principal.allows_model(model.public_id)
        and bool(routes_for_class(model.routes, dedicated=dedicated))
    )


def models_for(
    principal: Principal,
    *,
    models: Mapping[str, CatalogModel],
    tables: LimitTables,
) -> list[CatalogModel]:
    """The models the principal may use, by public id."""
    dedicated = service_class_dedicated(principal, tables)
    return [
        model
        for _, model in sorted(models.items())
        if model_usable(model, principal, dedicated=dedicated)
    ]


@dataclass(frozen=True, slots=True)
class ModelAccess:
    """The decision for one named model. `model` is set when it may be used;
    otherwise `requestable` says whether asking for a class would open it."""

    model: CatalogModel | None
    dedicated: bool
    requestable: bool = False


def model_access(
    principal: Principal,
    public_id: str,
    *,
    models: Mapping[str, CatalogModel],
    tables: LimitTables,
) -> ModelAccess:
    dedicated = service_class_dedicated(principal, tables)
    model = models.get(public_id)
    if model is None:
        return ModelAccess(model=None, dedicated=dedicated)
    if model_usable(model, principal, dedicated=dedicated):
        return ModelAccess(model=model, dedicated=dedicated)
    return ModelAccess(
        model=None,
        dedicated=dedicated,
        requestable=_requestable(model, principal, tables, dedicated=dedicated),
    )


def _requestable(
    model: CatalogModel,
    principal: Principal,
    tables: LimitTables,
    *,
    dedicated: bool,
) -> bool:
    """Whether joining one requestable class would make the model usable. A
    key's own allowlist is the key owner's choice, not something to ask for."""
    if not principal.allows_model(model.public_id):
        return False
    for group_id in tables.requestable_groups:
        if group_id in principal.group_ids:
            continue
        groups = (*principal.group_ids, group_id)
        joined_dedicated = dedicated or group_id in tables.dedicated_groups
        if model.allowed_for(groups) and routes_for_class(
            model.routes, dedicated=joined_dedicated
        ):
            return True
    return False


def _most_generous(values: list[int]) -> int | None:
    if not values:
        return None
    return 0 if 0 in values else max(values)


def limits_effective(
    tables: LimitTables, user_id: int, group_ids: tuple[int, ...]
) -> tuple[int, int]:
    """A user's requests and tokens per minute (0: unlimited): the user's own
    override, else the most generous of the user's groups, else the site's
    default. The proxy (apiproxy.limits) and the pages both ask here."""
    own_rpm, own_tpm = tables.users.get(user_id, (None, None))
    pairs = [tables.groups[g] for g in group_ids if g in tables.groups]
    group_rpm = _most_generous([p[0] for p in pairs if p[0] is not None])
    group_tpm = _most_generous([p[1] for p in pairs if p[1] is not None])
    rpm = own_rpm if own_rpm is not None else group_rpm
    tpm = own_tpm if own_tpm is not None else group_tpm
    return (
        settings.DEFAULT_USER_RPM if rpm is None else rpm,
        settings.DEFAULT_USER_TPM if tpm is None else tpm,
    )
