"""Who may call which model (catalog.access over a fresh snapshot): everyone,
or members of the listed groups."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group

from catalog.models import Backend, Deployment, Model
from catalog.selectors import model_ids_for_user, models_for_user
from tests.factories import backend_make, model_make


@pytest.fixture
def lab(alice: Any, bob: Any) -> Group:
    """alice and bob's research group; charlie is not in it."""
    group = Group.objects.create(name="lab")
    group.user_set.add(alice, bob)
    return group


@pytest.fixture
def catalog(lab: Group) -> dict[str, Model]:
    backend = backend_make()
    open_model = model_make(public_id="open", backend=backend)
    lab_model = model_make(public_id="lab-only", backend=backend, everyone=False)
    lab_model.access_groups.add(lab)
    closed = model_make(public_id="nobody", backend=backend, everyone=False)
    return {"open": open_model, "lab": lab_model, "closed": closed}


def ids(user: Any) -> list[str]:
    return [model.public_id for model in models_for_user(user=user)]


def test_group_members_see_their_group_s_models(
    catalog: dict[str, Model], alice: Any, bob: Any
) -> None:
    assert ids(alice) == ["lab-only", "open"]
    assert ids(bob) == ["lab-only", "open"]


def test_an_outsider_sees_only_models_open_to_everyone(
    catalog: dict[str, Model], charlie: Any
) -> None:
    assert ids(charlie) == ["open"]
    assert model_ids_for_user(charlie) == ["open"]


def test_staff_get_no_exception_to_group_access(
    catalog: dict[str, Model], staff: Any
) -> None:
    assert ids(staff) == ["open"]


def test_an_inactive_user_sees_nothing(catalog: dict[str, Model], alice: Any) -> None:
    alice.is_active = False
    alice.save()
    assert ids(alice) == []


def test_a_model_in_two_of_the_user_s_groups_is_listed_once(
    catalog: dict[str, Model], alice: Any
) -> None:
    other = Group.objects.create(name="faculty")
    other.user_set.add(alice)
    catalog["lab"].access_groups.add(other)
    assert ids(alice) == ["lab-only", "open"]


@pytest.mark.parametrize(
    "switch_off",
    [
        lambda m: Model.objects.filter(pk=m.pk).update(enabled=False),
        lambda m: Deployment.objects.filter(model=m).update(enabled=False),
        lambda m: Deployment.objects.filter(model=m).update(served=False),
        lambda m: Backend.objects.update(enabled=False),
    ],
    ids=["model disabled", "route disabled", "not served", "backend disabled"],
)
def test_a_model_without_a_live_route_is_not_listed(
    catalog: dict[str, Model], charlie: Any, switch_off: Any
) -> None:
    switch_off(catalog["open"])
    assert "open" not in ids(charlie)


def test_an_unhealthy_backend_still_lists_its_models(
    catalog: dict[str, Model], charlie: Any
) -> None:
    # The proxy decides per request; a backend may be back before the next check.
    Backend.objects.update(healthy=False)
    assert ids(charlie) == ["open"]


def test_listing_costs_a_fixed_number_of_queries(
    catalog: dict[str, Model], alice: Any, django_assert_num_queries: Any
) -> None:
    # The snapshot's four, the limit tables' three, the user's groups: the
    # same for ten models or a thousand.
    with django_assert_num_queries(8):
        ids(alice)
