"""What needs staff attention leads the admin index and the dashboard: pending
decisions, failing backends, errors; and the admin groups accounts together."""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from accounts.models import User
from catalog.models import AccessRequest
from projects.models import AllocationRequest
from tests.factories import backend_make, user_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client, staff: User) -> Client:
    client.force_login(staff)
    return client


def _waiting(alice: User) -> None:
    group = Group.objects.create(name="performance")
    AccessRequest.objects.create(user=alice, group=group, use_case="Bulk")
    AccessRequest.objects.create(
        user=alice, group=group, use_case="Old", state=AccessRequest.State.REFUSED
    )
    AllocationRequest.objects.create(
        requester=alice,
        name="thesis",
        tokens=1000,
        ends_on=date(2030, 1, 1),
        justification="Chapter 3",
    )
    user_make(username="newcomer", is_active=False, pending_approval=True)


def test_the_admin_index_flags_what_waits_for_a_decision(
    admin_client: Client, alice: User
) -> None:
    _waiting(alice)
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "1 access request waits" in page
    assert "1 allocation request waits" in page
    assert "1 new account waits for approval" in page
    assert "/admin/catalog/accessrequest/?state__exact=pending" in page
    assert "?pending_approval__exact=1" in page


def test_a_quiet_admin_index_shows_no_banner(admin_client: Client) -> None:
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="ops-attention"' not in page


def test_the_dashboard_leads_with_failing_backends_and_pending_requests(
    admin_client: Client, alice: User
) -> None:
    _waiting(alice)
    backend_make(name="gpu02", healthy=False)
    page = admin_client.get(reverse("ops-dashboard")).content.decode()
    attention = page.index('id="ops-attention"')
    assert attention < page.index('id="ops-backends"')
    assert "1 backend is failing" in page and "1 access request waits" in page
    assert "0 errors" not in page


def test_a_quiet_dashboard_says_so_instead_of_rows_of_zeros(
    admin_client: Client,
) -> None:
    page = admin_client.get(reverse("ops-dashboard")).content.decode()
    assert "Nothing needs attention" in page
    assert 'id="ops-traffic"' not in page
    assert "No requests in the last 24 hours." in page
    assert "0 errors" not in page


def test_users_groups_and_keys_share_one_accounts_section(
    admin_client: Client,
) -> None:
    response = admin_client.get(reverse("admin:index"))
    apps = {app["app_label"]: app for app in response.context["app_list"]}
    assert "auth" not in apps
    names = [model["object_name"] for model in apps["accounts"]["models"]]
    assert "Group" in names and "User" in names
    assert admin_client.get("/admin/auth/").status_code == 200


def test_the_group_page_shows_the_class_settings_and_folds_permissions(
    admin_client: Client,
) -> None:
    group = Group.objects.create(name="standard")
    page = admin_client.get(
        reverse("admin:auth_group_change", args=[group.pk])
    ).content.decode()
    assert "portico_limits" in page  # the service-class inline
    assert "collapse" in page
