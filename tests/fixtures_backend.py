"""Pytest fixtures for the OpenAI-speaking fake backend (tests/fakebackend.py).

Registered from the root conftest.py through `pytest_plugins`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.fakebackend import FakeBackend


@pytest.fixture
def fake_backend() -> Iterator[FakeBackend]:
    """A fake backend on a free loopback port, closed after the test."""
    with FakeBackend() as fake:
        yield fake


@pytest.fixture
def fake_backend_factory() -> Iterator[Callable[[], FakeBackend]]:
    """Make as many fake backends as a test needs (balancing, failover)."""
    started: list[FakeBackend] = []

    def make() -> FakeBackend:
        fake = FakeBackend().start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.close()
