"""Fixtures for the apiproxy tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fast_hashing(fast_password_hashing: None) -> None:
    """Nothing here depends on the password hasher."""


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
