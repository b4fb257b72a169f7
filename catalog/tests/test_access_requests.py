"""Asking for a service class: request from Settings, staff decide in admin,
the user hears by e-mail, and access follows."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from catalog.access_requests import access_request_create
from catalog.models import AccessRequest, GroupLimits

pytestmark = pytest.mark.django_db


@pytest.fixture
def performance() -> Group:
    group = Group.objects.create(name="performance")
    GroupLimits.objects.create(
        group=group,
        dedicated_access=True,
        requestable=True,
        rpm=600,
        description="Dedicated GPUs for bulk API work.",
    )
    return group


def ask(client: Client, group: Group) -> object:
    return client.post(
        reverse("settings_access"),
        {
            "group": group.pk,
            "use_case": "Annotating 40k abstracts for a meta-study.",
            "models_wanted": "fake-chat",
            "expected_volume": "40,000 requests over a week",
        },
        follow=True,
    )


def test_a_request_is_approved_in_admin_and_the_user_is_told(
    client: Client, alice, staff, performance: Group, django_capture_on_commit_callbacks
) -> None:
    client.force_login(alice)
    page = client.get(reverse("settings_access"))
    assert b"Dedicated GPUs for bulk API work." in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = ask(client, performance)
    assert b"Your request was sent" in response.content
    request = AccessRequest.objects.get(user=alice)
    assert request.state == "pending"
    assert any("asks for performance" in m.subject for m in mail.outbox)
    assert b'data-state="pending"' in client.get(reverse("settings_access")).content

    admin = Client()
    admin.force_login(staff)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        admin.post(
            reverse("admin:catalog_accessrequest_changelist"),
            {"action": "approve", "_selected_action": [request.pk]},
        )
    request.refresh_from_db()
    assert request.state == "approved" and request.decided_by == staff
    assert alice.groups.filter(pk=performance.pk).exists()
    assert [m.to for m in mail.outbox] == [[alice.email]]
    assert "approved" in mail.outbox[0].subject
    assert b'data-state="member"' in client.get(reverse("settings_access")).content


def test_a_refusal_carries_the_staff_note(
    client: Client, alice, staff, performance: Group, django_capture_on_commit_callbacks
) -> None:
    client.force_login(alice)
    ask(client, performance)
    request = AccessRequest.objects.get(user=alice)
    request.staff_note = "Please use the shared class for now."
    request.save()
    from catalog.access_requests import access_request_decide

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        access_request_decide(request=request, approve=False, staff=staff)
    assert not alice.groups.filter(pk=performance.pk).exists()
    assert "shared class for now" in mail.outbox[0].body
    # Deciding again changes nothing and sends nothing.
    with django_capture_on_commit_callbacks(execute=True):
        access_request_decide(request=request, approve=True, staff=staff)
    assert not alice.groups.filter(pk=performance.pk).exists()
    assert len(mail.outbox) == 1


def test_one_pending_request_per_class_and_none_for_members(
    client: Client, alice, performance: Group
) -> None:
    client.force_login(alice)
    ask(client, performance)
    ask(client, performance)
    assert AccessRequest.objects.filter(user=alice).count() == 1
    with pytest.raises(ValidationError, match="already waiting"):
        access_request_create(user=alice, group=performance, use_case="again")
    AccessRequest.objects.all().delete()
    alice.groups.add(performance)
    with pytest.raises(ValidationError, match="already belong"):
        access_request_create(user=alice, group=performance, use_case="again")


def test_the_page_shows_limits_and_classes_and_offers_no_class_twice(
    client: Client, alice, performance: Group, settings
) -> None:
    settings.DEFAULT_USER_RPM = 30
    other = Group.objects.create(name="batch")
    GroupLimits.objects.create(group=other, requestable=True, description="Batch.")
    client.force_login(alice)
    page = client.get(reverse("settings_access")).content.decode()
    assert "shared only" in page and "<dd data-rpm>30</dd>" in page
    assert page.count("<option") == 2
    ask(client, performance)
    page = client.get(reverse("settings_access")).content.decode()
    assert page.count("<option") == 1 and ">batch</option>" in page
    alice.groups.add(performance)
    AccessRequest.objects.create(user=alice, group=other, use_case="bulk")
    page = client.get(reverse("settings_access")).content.decode()
    assert "<option" not in page and "every class on offer" in page
    assert '<span class="tag">performance</span>' in page
    assert "<dd data-rpm>600</dd>" in page
    assert 'aria-current="page">Access</a>' in page


def test_groups_that_are_not_requestable_cannot_be_asked_for(
    client: Client, alice
) -> None:
    secret = Group.objects.create(name="staff-only")
    GroupLimits.objects.create(group=secret, dedicated_access=True)
    client.force_login(alice)
    response = ask(client, secret)
    assert not AccessRequest.objects.exists()
    assert response.status_code == 200


def test_staff_edit_limits_on_the_group_page(
    client: Client, staff, performance
) -> None:
    client.force_login(staff)
    page = client.get(reverse("admin:auth_group_change", args=[performance.pk]))
    assert page.status_code == 200
    assert b"dedicated_access" in page.content
    assert client.get(reverse("admin:auth_group_changelist")).status_code == 200
    assert client.get(reverse("admin:catalog_userlimits_changelist")).status_code == 200
    assert client.get(reverse("admin:catalog_keylimits_changelist")).status_code == 200
