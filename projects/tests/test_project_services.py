"""Projects' writes against PostgreSQL: grants with history, members, keys."""

from __future__ import annotations

from datetime import date, datetime

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from projects.models import AllocationChange, ProjectMembership
from projects.services import (
    allocation_set,
    project_create,
    project_key_create,
    project_member_remove,
    project_member_set,
)
from projects.windows import AllocationTerms, next_tokens_at, window_at

pytestmark = pytest.mark.django_db


def test_a_project_starts_with_its_pi_and_its_grant_in_the_history(alice) -> None:  # type: ignore[no-untyped-def]
    project = project_create(
        name="Protein folding",
        pi=alice,
        allocation_tokens=1_000_000,
        ends_on=date(2027, 6, 30),
    )
    assert ProjectMembership.objects.get(project=project).role == "pi"
    allocation_set(project=project, allocation_tokens=2_000_000, reason="more")
    assert list(
        AllocationChange.objects.filter(project=project).values_list(
            "allocation_tokens", flat=True
        )
    ) == [2_000_000, 1_000_000]


def test_an_end_before_the_start_is_refused(alice) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError):
        project_create(
            name="Backwards",
            pi=alice,
            allocation_tokens=1,
            starts_on=date(2027, 1, 2),
            ends_on=date(2027, 1, 1),
        )


def test_only_members_get_project_keys_and_removal_revokes_them(alice, bob) -> None:  # type: ignore[no-untyped-def]
    project = project_create(
        name="Climate", pi=alice, allocation_tokens=10, ends_on=date(2030, 1, 1)
    )
    with pytest.raises(ValidationError):
        project_key_create(project=project, user=bob, name="laptop")
    project_member_set(project=project, user=bob)
    issued = project_key_create(project=project, user=bob, name="laptop")
    assert issued.key.project_id == project.pk
    assert project_member_remove(project=project, user=bob) == 1
    issued.key.refresh_from_db()
    assert issued.key.revoked_at is not None
    with pytest.raises(ValidationError):
        project_member_remove(project=project, user=alice)


def test_monthly_instalments_split_the_grant_over_the_months() -> None:
    terms = AllocationTerms(
        project_id=1,
        name="p",
        allocation_tokens=3_000,
        starts_on=date(2027, 1, 15),
        ends_on=date(2027, 3, 31),
        monthly_instalments=True,
        member_cap_tokens=None,
    )
    with time_machine.travel(
        datetime(2027, 2, 10, 12, tzinfo=timezone.get_current_timezone())
    ):
        window = window_at(terms, timezone.now())
        assert window is not None and window.limit == 1_000
        assert timezone.localdate(window.start) == date(2027, 2, 1)
        assert next_tokens_at(terms, timezone.now()) == date(2027, 3, 1)
    assert window_at(terms, timezone.make_aware(datetime(2027, 4, 1))) is None
