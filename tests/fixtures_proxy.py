"""Fixtures for driving the proxy for real: the whole ASGI app under uvicorn in
a thread, a fake OpenAI backend on loopback registered as an ordinary backend,
and alice with a real API key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from accounts.models import User
from accounts.services import apikey_create
from tests.fakebackend import FakeBackend
from tests.factories import user_make
from tests.fixtures_browser import ThreadedUvicorn


@dataclass
class ProxyRig:
    server: ThreadedUvicorn
    backend: FakeBackend
    user: User
    key: str

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def openai(self, **options: Any) -> Any:
        from openai import OpenAI

        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 20)
        return OpenAI(base_url=self.base_url, api_key=self.key, **options)

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            headers={"authorization": f"Bearer {self.key}"},
            timeout=20,
        )

    def usage_record(self, request_id: str, *, timeout: float = 10.0) -> Any:
        """The usage record of a request, once the buffer has flushed it."""
        from usage.models import UsageRecord

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = UsageRecord.objects.filter(request_id=request_id).first()
            if record is not None:
                return record
            time.sleep(0.05)
        raise AssertionError(f"no usage record for {request_id} after {timeout}s")


def model_register(
    backend: FakeBackend, *, name: str = "fake", **backend_fields: Any
) -> Any:
    """Register a fake backend the way an operator does (addbackend's service)."""
    from apiproxy.catalog import catalog
    from apiproxy.services import backend_add, backend_discover_models

    registered = backend_add(name=name, base_url=backend.base_url, **backend_fields)
    backend_discover_models(backend=registered)
    catalog.invalidate()
    return registered


@pytest.fixture
def proxy(
    transactional_db: None, fake_backend: FakeBackend, settings: Any
) -> Iterator[ProxyRig]:
    settings.USAGE_FLUSH_SECONDS = 0.05
    settings.CATALOG_REFRESH_SECONDS = 0.0
    settings.BACKEND_READ_TIMEOUT = 3.0
    from apiproxy.routing import picker

    picker.refused_until.clear()
    user = user_make(username="alice")
    issued = apikey_create(user=user, name="tests")
    model_register(fake_backend)
    server = ThreadedUvicorn()
    server.start()
    try:
        yield ProxyRig(server=server, backend=fake_backend, user=user, key=issued.raw)
    finally:
        server.stop()
