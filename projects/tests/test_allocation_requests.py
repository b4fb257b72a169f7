"""Asking for compute: a new project or more of one, decided by staff in
admin, with the grant in the allocation's history and the PI told."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from projects.allocation_requests import (
    allocation_request_create,
    allocation_request_decide,
)
from projects.models import AllocationChange, AllocationRequest, Project
from projects.services import project_create, project_member_set
from tests.factories import user_make

pytestmark = pytest.mark.django_db(transaction=True)


def _later(days: int = 90):  # type: ignore[no-untyped-def]
    return timezone.localdate() + timedelta(days=days)


def test_a_researcher_asks_for_a_project_and_staff_grant_less_for_longer(
    alice: Any,
) -> None:
    staff = user_make(username="op", is_staff=True, email="op@example.org")
    client = Client()
    client.force_login(alice)
    page = client.post(
        "/settings/projects/request/",
        {
            "name": "Glaciers",
            "tokens": 5_000_000,
            "ends_on": _later().isoformat(),
            "justification": "Summarising field notes",
        },
    )
    assert page.status_code == 302
    request = AllocationRequest.objects.get()
    assert "op@example.org" in mail.outbox[-1].to
    request.granted_tokens, request.granted_ends_on = 2_000_000, _later(180)
    request.save()
    allocation_request_decide(
        request=request, approve=True, staff=staff, note="Start small"
    )
    project = Project.objects.get(name="Glaciers")
    assert (project.pi, project.allocation_tokens, project.ends_on) == (
        alice,
        2_000_000,
        _later(180),
    )
    change = AllocationChange.objects.get(project=project)
    assert change.changed_by == staff and f"#{request.pk}" in change.reason
    assert mail.outbox[-1].to == [alice.email] and "Start small" in mail.outbox[-1].body
    # Deciding again changes nothing.
    allocation_request_decide(request=request, approve=False, staff=staff)
    request.refresh_from_db()
    assert request.state == "approved"


def test_more_for_a_project_is_asked_by_its_pi_or_a_manager_only(
    alice: Any, bob: Any
) -> None:
    project = project_create(
        name="Climate", pi=alice, allocation_tokens=1_000, ends_on=_later(30)
    )
    project_member_set(project=project, user=bob)
    with pytest.raises(ValidationError):
        allocation_request_create(
            requester=bob,
            project=project,
            tokens=10,
            ends_on=_later(),
            justification="x",
        )
    client = Client()
    client.force_login(bob)
    assert client.get(f"/settings/projects/{project.pk}/request/").status_code == 404
    request = allocation_request_create(
        requester=alice,
        project=project,
        tokens=500,
        ends_on=_later(60),
        justification="y",
    )
    staff = user_make(username="op", is_staff=True)
    allocation_request_decide(request=request, approve=True, staff=staff)
    project.refresh_from_db()
    assert (project.allocation_tokens, project.ends_on) == (1_500, _later(60))
    assert AllocationChange.objects.filter(project=project).count() == 2


def test_a_refusal_grants_nothing_and_says_why(alice: Any) -> None:
    request = allocation_request_create(
        requester=alice, name="Big", tokens=10**9, ends_on=_later(), justification="z"
    )
    allocation_request_decide(
        request=request,
        approve=False,
        staff=user_make(username="op", is_staff=True),
        note="Ask for less",
    )
    assert not Project.objects.exists()
    assert (
        "refused" in mail.outbox[-1].subject and "Ask for less" in mail.outbox[-1].body
    )


def test_staff_approve_in_admin_with_the_granted_amounts(alice: Any) -> None:
    request = allocation_request_create(
        requester=alice, name="Dunes", tokens=100, ends_on=_later(), justification="w"
    )
    root = user_make(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)
    url = f"/admin/projects/allocationrequest/{request.pk}/change/"
    changed = client.post(
        url,
        {
            "granted_tokens": "250",
            "granted_starts_on": "",
            "granted_ends_on": _later(45).isoformat(),
            "granted_dedicated": "on",
            "staff_note": "",
        },
    )
    assert changed.status_code == 302, changed.content[:500]
    acted = client.post(
        "/admin/projects/allocationrequest/",
        {"action": "approve", "_selected_action": [request.pk]},
    )
    assert acted.status_code == 302
    project = Project.objects.get(name="Dunes")
    assert (project.allocation_tokens, project.ends_on, project.dedicated) == (
        250,
        _later(45),
        True,
    )
