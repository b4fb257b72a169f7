"""Suite-wide fixtures: personas, real-service checks.

`make test` points DATABASE_URL and REDIS_URL at real PostgreSQL and Redis; when
they are set but unreachable the session stops loudly instead of falling back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.factories import user_make

pytest_plugins = [
    "tests.fixtures_backend",
    "tests.fixtures_browser",
    "tests.fixtures_proxy",
]


def pytest_configure(config: pytest.Config) -> None:
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        import redis

        try:
            redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
        except redis.RedisError as error:
            raise pytest.UsageError(
                f"REDIS_URL is set but Redis is down: {error}"
            ) from None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: Playwright's sync API keeps an event loop in the
    main thread for the rest of the session, which asyncio.run() refuses. A
    test that asks for a page is one, whether or not it carries the marker."""
    for item in items:
        if "page" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(autouse=True)
def _clean_cache() -> Iterator[None]:
    """Each test starts with an empty cache (a flushed Redis test database)."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def alice(db):  # type: ignore[no-untyped-def]
    """Owner persona: an ordinary researcher."""
    return user_make(username="alice")


@pytest.fixture
def bob(db):  # type: ignore[no-untyped-def]
    """Same group as alice."""
    return user_make(username="bob")


@pytest.fixture
def charlie(db):  # type: ignore[no-untyped-def]
    """An outsider."""
    return user_make(username="charlie")


@pytest.fixture
def staff(db):  # type: ignore[no-untyped-def]
    return user_make(username="operator", is_staff=True, is_superuser=True)


@pytest.fixture
def fast_password_hashing(settings):  # type: ignore[no-untyped-def]
    """Personas are created with a password; PBKDF2 costs about a second each on
    a busy core. For tests where nothing depends on the hasher (Django's
    testing advice); an app's conftest makes it autouse."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
