"""Aliases: one model's deployments under another name, with default
parameters (catalog.models.Model.alias_of). The Tartu guide's
`qwen3.5-122b-nonthinking` is `qwen3.5-122b` with
`{"chat_template_kwargs": {"enable_thinking": false}}`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from catalog.models import Model


def alias_upsert(
    *,
    name: str,
    target: str,
    params: dict[str, Any] | None = None,
    system_prompt_prefix: str | None = None,
    groups: list[str] | None = None,
    quota_weight: Decimal | None = None,
    display_name: str | None = None,
) -> tuple[Model, bool]:
    """Make `name` an alias of the model `target` (or update the alias);
    options left as None keep their current values. `groups` restricts the
    alias to those groups ([] opens it to everyone). Returns (alias, created).

    Raises ValidationError with a message for people: an unknown target or
    group, a name that is already a real model, parameters that are not an
    object."""
    target_model = Model.objects.filter(public_id=target).first()
    if target_model is None:
        raise ValidationError(f"There is no model '{target}' to point the alias at.")
    if params is not None and not isinstance(params, dict):
        raise ValidationError("The default parameters must be a JSON object.")
    with transaction.atomic():
        alias = Model.objects.select_for_update().filter(public_id=name).first()
        created = alias is None
        if alias is None:
            alias = Model(public_id=name, everyone=target_model.everyone)
        elif alias.alias_of_id is None:
            raise ValidationError(
                f"'{name}' is a model with deployments of its own, not an alias; "
                "choose another name."
            )
        alias.alias_of = target_model
        _fields_set(alias, params, system_prompt_prefix, quota_weight, display_name)
        alias.full_clean()
        alias.save()
        if groups is not None:
            _groups_set(alias, groups)
        elif created:
            alias.access_groups.set(target_model.access_groups.all())
    return alias, created


def _fields_set(
    alias: Model,
    params: dict[str, Any] | None,
    system_prompt_prefix: str | None,
    quota_weight: Decimal | None,
    display_name: str | None,
) -> None:
    if params is not None:
        alias.default_params = params
    if system_prompt_prefix is not None:
        alias.system_prompt_prefix = system_prompt_prefix
    if quota_weight is not None:
        alias.quota_weight = quota_weight
    if display_name is not None:
        alias.display_name = display_name


def _groups_set(alias: Model, names: list[str]) -> None:
    found = list(Group.objects.filter(name__in=names))
    missing = sorted(set(names) - {group.name for group in found})
    if missing:
        raise ValidationError(f"No such group: {', '.join(missing)}.")
    alias.access_groups.set(found)
    alias.everyone = not found
    alias.save(update_fields=["everyone", "updated_at"])
