"""Fixtures for the apiproxy tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    """Personas are created with a password; PBKDF2 costs about a second each on
    a busy core and nothing here depends on the hasher (Django's testing advice)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def sync_redis():  # type: ignore[no-untyped-def]
    """A plain client on the test run's Redis, for looking at what the
    proxy's async code left there."""
    import redis
    from django.conf import settings

    if not settings.REDIS_URL:
        pytest.skip("needs Redis (make test sets it)")
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()
