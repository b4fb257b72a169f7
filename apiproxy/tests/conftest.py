"""Fixtures for the apiproxy tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    """Personas are created with a password; PBKDF2 costs about a second each on
    a busy core and nothing here depends on the hasher (Django's testing advice)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
