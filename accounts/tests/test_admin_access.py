"""The admin is Portico's console: staff only."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_staff_reach_the_admin_titled_portico(client: Client, staff: User) -> None:
    client.force_login(staff)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert b"Portico" in response.content
    assert client.get("/admin/accounts/user/").status_code == 200


def test_researchers_are_sent_to_the_admin_login(client: Client, alice: User) -> None:
    client.force_login(alice)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert client.get("/admin/accounts/user/").status_code == 302


def test_anonymous_visitors_are_sent_to_the_admin_login(client: Client) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302


def test_the_top_bar_shows_admin_to_staff_only(
    client: Client, staff: User, alice: User
) -> None:
    client.force_login(staff)
    assert b'data-nav="admin"' in client.get("/").content
    client.force_login(alice)
    assert b'data-nav="admin"' not in client.get("/").content
