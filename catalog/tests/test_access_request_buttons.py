"""Approve and Refuse on an access request's own admin page: one click,
CSRF-checked, the staff note sent along, back to the page with a message."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import User
from catalog.models import AccessRequest, GroupLimits
from tests.factories import PASSWORD, user_make


@pytest.fixture
def waiting(alice: User) -> AccessRequest:
    group = Group.objects.create(name="performance")
    GroupLimits.objects.create(group=group, requestable=True, dedicated_access=True)
    return AccessRequest.objects.create(user=alice, group=group, use_case="Bulk work")


def _decide(client: Client, pk: int, decision: str, note: str = "") -> Any:
    url = reverse("admin:catalog_accessrequest_decide", args=[pk])
    return client.post(url, {"decision": decision, "staff_note": note}, follow=True)


@pytest.mark.django_db
def test_approve_on_the_change_page_adds_the_user_to_the_class(
    client: Client,
    staff: User,
    waiting: AccessRequest,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client.force_login(staff)
    page = client.get(reverse("admin:catalog_accessrequest_change", args=[waiting.pk]))
    assert b'id="access-approve"' in page.content
    assert b'id="access-refuse"' in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = _decide(client, waiting.pk, "approve", note="Enjoy the GPUs")
    change = reverse("admin:catalog_accessrequest_change", args=[waiting.pk])
    assert response.redirect_chain[-1][0] == change
    assert "Approved: alice&#x27;s request for performance" in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.state == "approved" and waiting.decided_by == staff
    assert waiting.staff_note == "Enjoy the GPUs"
    assert waiting.user.groups.filter(name="performance").exists()
    assert "Enjoy the GPUs" in mail.outbox[-1].body
    assert b'id="access-approve"' not in response.content  # decided: no buttons


@pytest.mark.django_db
def test_refuse_leaves_the_user_out_and_deciding_twice_changes_nothing(
    client: Client, staff: User, waiting: AccessRequest
) -> None:
    client.force_login(staff)
    _decide(client, waiting.pk, "refuse")
    waiting.refresh_from_db()
    assert waiting.state == "refused"
    response = _decide(client, waiting.pk, "approve")
    assert "Already decided: refused" in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.state == "refused"
    assert not waiting.user.groups.exists()


@pytest.mark.django_db
def test_the_buttons_need_post_csrf_and_change_permission(
    staff: User, waiting: AccessRequest
) -> None:
    url = reverse("admin:catalog_accessrequest_decide", args=[waiting.pk])
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(staff)
    assert checked.get(url).status_code == 405
    assert checked.post(url, {"decision": "approve"}).status_code == 403  # no token

    viewer = user_make(username="viewer", is_staff=True)
    client = Client()
    client.force_login(viewer)
    assert client.get(url).status_code == 403
    assert client.post(url, {"decision": "approve"}).status_code == 403
    waiting.refresh_from_db()
    assert waiting.state == "pending"


@pytest.mark.browser
def test_staff_approve_with_one_click_in_the_browser(
    portal_server: Any, page: Any, settings: Any, alice: User
) -> None:
    settings.REQUIRE_STAFF_MFA = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user_make(username="op", is_staff=True, is_superuser=True)
    group = Group.objects.create(name="performance")
    request = AccessRequest.objects.create(user=alice, group=group, use_case="Bulk")
    base = portal_server.url
    page.goto(base + "/admin/")
    page.fill("input[name=login]", "op")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(base + "/admin/")
    assert "1 access request waits" in page.inner_text("#ops-attention")
    page.click("#ops-attention a")
    page.click(f"a[href*='/accessrequest/{request.pk}/change/']")
    page.fill("textarea[name=staff_note]", "Welcome")
    page.click("#access-approve")
    page.wait_for_selector(".messagelist .success")
    request.refresh_from_db()
    assert request.state == "approved" and request.staff_note == "Welcome"
    assert page.locator("#access-approve").count() == 0
