"""/healthz and /readyz: in the test process, and in a server process whose
PostgreSQL or Redis is cut by a fault proxy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from django.conf import settings
from django.db import connection

from ops.services import backend_check_all
from ops.tests.conftest import PorticoProcess
from tests.fakebackend import FakeBackend
from tests.faultproxy import FaultProxy
from tests.fixtures_proxy import ProxyRig, model_register, subprocess_database_url

pytestmark = pytest.mark.django_db(transaction=True)


def readyz(url: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(url + "/readyz", timeout=10)
    assert response.headers["cache-control"] == "no-store"
    return response.status_code, response.json()


def eventually_ready(url: str, within: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        status, body = readyz(url)
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, body
            return body
        time.sleep(0.1)


def test_healthz_answers_without_asking_anything(proxy: ProxyRig) -> None:
    with proxy.backend.refusing():
        response = httpx.get(proxy.server.url + "/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")
    assert httpx.head(proxy.server.url + "/healthz").status_code == 200
    assert httpx.post(proxy.server.url + "/healthz").status_code == 405


def test_readyz_is_ready_with_database_redis_and_a_healthy_backend(
    proxy: ProxyRig,
) -> None:
    status, body = readyz(proxy.server.url)
    assert status == 200
    assert body["status"] == "ready" and body["down"] == []
    assert body["checks"]["backends"] == {"ok": True, "enabled": 1, "healthy": 1}
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]


def test_readyz_turns_503_when_every_backend_fails_and_recovers(
    proxy: ProxyRig,
) -> None:
    with proxy.backend.refusing():
        backend_check_all()
        status, body = readyz(proxy.server.url)
    assert status == 503
    assert body["down"] == ["backends"]
    assert "fails its health checks" in body["checks"]["backends"]["detail"]
    backend_check_all()
    assert readyz(proxy.server.url)[0] == 200


def test_readyz_is_not_ready_without_any_backend(proxy: ProxyRig) -> None:
    from catalog.models import Backend

    Backend.objects.update(enabled=False)
    status, body = readyz(proxy.server.url)
    assert status == 503
    assert body["checks"]["backends"]["detail"] == "no enabled backend"


def test_readyz_turns_503_while_postgres_is_down_and_recovers(
    portico_process: Callable[..., PorticoProcess], fake_backend: FakeBackend
) -> None:
    model_register(fake_backend)
    params = connection.settings_dict
    fault = FaultProxy(params["HOST"] or "127.0.0.1", int(params["PORT"] or 5432))
    fault.start()
    try:
        server = portico_process(
            DATABASE_URL=subprocess_database_url(host="127.0.0.1", port=fault.port)
        )
        eventually_ready(server.url)
        with fault.outage():
            status, body = readyz(server.url)
            assert status == 503
            assert body["down"] == ["database", "backends"]
            assert body["checks"]["redis"]["ok"]
            # What failed, not where: the probe answers anyone who asks.
            assert str(fault.port) not in str(body)
            # Liveness does not depend on the database.
            assert httpx.get(server.url + "/healthz").status_code == 200
        body = eventually_ready(server.url)
        assert body["checks"]["backends"]["healthy"] == 1
    finally:
        fault.close()


def test_readyz_turns_503_while_redis_is_down_and_recovers(
    portico_process: Callable[..., PorticoProcess], fake_backend: FakeBackend
) -> None:
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (make test sets it)")
    model_register(fake_backend)
    redis_url = urlsplit(settings.REDIS_URL)
    fault = FaultProxy(redis_url.hostname or "127.0.0.1", redis_url.port or 6379)
    fault.start()
    try:
        server = portico_process(
            REDIS_URL=f"redis://127.0.0.1:{fault.port}{redis_url.path}"
        )
        eventually_ready(server.url)
        with fault.outage():
            status, body = readyz(server.url)
            assert status == 503
            assert body["down"] == ["redis"]
            assert body["checks"]["redis"]["detail"].startswith("no answer")
        eventually_ready(server.url)
    finally:
        fault.close()
