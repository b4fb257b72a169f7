"""The operations dashboard names users, their usage and their errors: staff
need `ops.view_dashboard` (superusers hold it), as the usage report needs
`usage.view_usagereport`; being staff is not enough."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone

from accounts.models import User
from tests.factories import usage_record_make, user_make

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/dashboard/"
LINK = 'href="/admin/dashboard/"'


def dashboard_permission() -> Permission:
    return Permission.objects.get(
        content_type__app_label="ops", codename="view_dashboard"
    )


@pytest.fixture
def dave(db: None) -> User:
    """Staff (can log in to the admin) with no permission at all."""
    return user_make(username="dave", is_staff=True)


@pytest.fixture
def secret_usage(alice: User) -> None:
    usage_record_make(
        user=alice,
        started_at=timezone.now() - timedelta(minutes=5),
        status=502,
        finish_reason="backend_error",
    )


def test_staff_without_the_permission_are_refused_and_see_no_link(
    client: Client, dave: User, secret_usage: None
) -> None:
    client.force_login(dave)
    response = client.get(DASHBOARD)
    assert response.status_code == 403
    assert "alice" not in response.content.decode()
    index = client.get("/admin/")
    assert index.status_code == 200
    assert LINK not in index.content.decode()


def test_staff_with_the_permission_see_the_dashboard_and_the_link(
    client: Client, dave: User, secret_usage: None
) -> None:
    dave.user_permissions.add(dashboard_permission())
    client.force_login(dave)
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    assert [row["user__username"] for row in response.context["top_users"]] == ["alice"]
    assert LINK in client.get("/admin/").content.decode()


def test_the_permission_may_come_from_a_group(client: Client, dave: User) -> None:
    operators = Group.objects.create(name="operators")
    operators.permissions.add(dashboard_permission())
    dave.groups.add(operators)
    client.force_login(dave)
    assert client.get(DASHBOARD).status_code == 200


def test_a_superuser_passes_without_being_given_it(client: Client, staff: User) -> None:
    assert staff.is_superuser
    client.force_login(staff)
    assert client.get(DASHBOARD).status_code == 200
    assert LINK in client.get("/admin/").content.decode()


def test_someone_signed_out_is_sent_to_log_in(client: Client) -> None:
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert "next=/admin/dashboard/" in response["Location"]


def test_the_permission_without_staff_status_opens_nothing(
    client: Client, charlie: User
) -> None:
    charlie.user_permissions.add(dashboard_permission())
    client.force_login(charlie)
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
