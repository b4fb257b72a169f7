"""Fixtures for the catalog tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fast_hashing(fast_password_hashing: None) -> None:
    """Nothing here depends on the password hasher."""
