"""Fixtures for the usage tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _fresh_quota_state(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Every test reads quotas afresh and starts with no in-process counters
    (Redis counters go with the cache flush of the root conftest)."""
    from usage.quota import local_counters, quota_limits

    settings.USAGE_QUOTA_REFRESH_SECONDS = 0.0
    local_counters.values.clear()
    quota_limits.invalidate()
    yield
    local_counters.values.clear()
    quota_limits.invalidate()
