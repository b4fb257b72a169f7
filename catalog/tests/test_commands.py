"""addbackend and discovermodels end to end, and the periodic task behind them."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from catalog.models import Backend, Model
from catalog.tasks import discover_models
from tests.fakebackend import FakeBackend

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_addbackend_registers_discovers_and_prints_the_models(
    fake_backend: FakeBackend,
) -> None:
    fake_backend.behaviour.api_key = "sk-backend"
    fake_backend.behaviour.models = ["llama-8b", "bge-embed"]
    # Written without /v1, as people do: stored with it.
    output = run(
        "addbackend",
        "gpu01",
        fake_backend.root_url,
        "--api-key",
        "sk-backend",
        "--pool",
        "dedicated",
        "--max-concurrency",
        "6",
    )
    assert f"Backend gpu01 at {fake_backend.base_url}" in output
    assert "2 model(s) served" in output
    assert "llama-8b (new)" in output and "bge-embed (new)" in output
    assert "sk-backend" not in output
    backend = Backend.objects.get(name="gpu01")
    assert (backend.pool, backend.max_concurrency, backend.api_key) == (
        "dedicated",
        6,
        "sk-backend",
    )
    assert Model.objects.get(public_id="bge-embed").supports_embeddings


def test_addbackend_keeps_an_unreachable_backend_and_says_so(
    fake_backend: FakeBackend,
) -> None:
    fake_backend.stop()
    with pytest.raises(CommandError, match="registered but did not answer"):
        run("addbackend", "gpu01", fake_backend.base_url)
    backend = Backend.objects.get(name="gpu01")
    assert backend.healthy is False
    assert backend.last_error == "Connection refused or host unreachable"


def test_addbackend_refuses_a_bad_url_and_stores_nothing() -> None:
    with pytest.raises(CommandError, match="credentials"):
        run("addbackend", "gpu01", "http://user:pw@gpu01:8000/v1")
    assert not Backend.objects.exists()


def test_discovermodels_refreshes_one_backend_or_all(
    fake_backend: FakeBackend,
) -> None:
    run("addbackend", "gpu01", fake_backend.base_url)
    fake_backend.behaviour.models = ["fake-chat", "newcomer"]
    assert "newcomer (new)" in run("discovermodels", "gpu01")
    fake_backend.behaviour.models = ["newcomer"]
    output = run("discovermodels")
    assert "fake-chat (no longer listed: not served)" in output
    with pytest.raises(CommandError, match="No backend named"):
        run("discovermodels", "gpu99")


def test_discovermodels_fails_loudly_when_a_backend_is_down(
    fake_backend: FakeBackend,
) -> None:
    run("addbackend", "gpu01", fake_backend.base_url)
    with fake_backend.refusing(), pytest.raises(CommandError, match="gpu01"):
        run("discovermodels")


def test_the_periodic_task_discovers_every_enabled_backend(
    fake_backend: FakeBackend,
) -> None:
    run("addbackend", "gpu01", fake_backend.base_url)
    Backend.objects.create(name="dead", base_url="http://127.0.0.1:9/v1")
    fake_backend.behaviour.models = ["latest"]
    assert discover_models() == 1
    assert Model.objects.filter(public_id="latest").exists()


def test_discovery_is_scheduled_as_part_of_the_backend_health_check() -> None:
    from ops.tasks import check_backends

    entry: dict[str, Any] = settings.CELERY_BEAT_SCHEDULE["ops-check-backends"]
    assert entry["task"] == check_backends.name
    assert entry["schedule"] == float(settings.BACKEND_CHECK_INTERVAL_SECONDS)
    assert discover_models.name not in {
        scheduled["task"] for scheduled in settings.CELERY_BEAT_SCHEDULE.values()
    }
