"""Fixtures for the API key tests: clients logged in the way people log in."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.factories import PASSWORD


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    """PBKDF2 costs about half a second per login on a busy CI core; what these
    tests check does not depend on the hasher (Django's testing advice)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def login(client: Client, user: User) -> Client:
    """Log in through allauth's form, so the session holds a fresh login record
    (force_login leaves none, and creating keys would ask for the password)."""
    response = client.post(
        reverse("account_login"), {"login": user.get_username(), "password": PASSWORD}
    )
    assert response.status_code == 302, response.content[:500]
    return client


@pytest.fixture
def alice_client(alice: User) -> Client:
    return login(Client(), alice)


@pytest.fixture
def bob_client(bob: User) -> Client:
    return login(Client(), bob)
