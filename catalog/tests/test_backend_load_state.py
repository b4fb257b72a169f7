"""Discovery learns what a backend runs and which models Ollama holds in
memory (catalog.loadstate), against real servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.loadtimes import load_seconds_note, load_seconds_read
from catalog.models import Backend, Deployment
from catalog.services import backend_add, backend_discover_models
from tests.fakebackend import FakeBackend
from tests.fakeollama import FakeOllama

pytestmark = pytest.mark.django_db


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama(models=["alpha", "beta", "gamma:7b"], capacity=2) as fake:
        yield fake


def discover(fake: Any, name: str = "gpu01", **fields: Any) -> Backend:
    backend = backend_add(name=name, base_url=fake.base_url, **fields)
    result = backend_discover_models(backend=backend)
    assert result.ok, result.error
    backend.refresh_from_db()
    return backend


def loaded() -> dict[str, bool | None]:
    return dict(Deployment.objects.values_list("upstream_model", "loaded"))


def test_it_knows_ollama_by_owned_by_and_reads_what_it_holds(
    ollama: FakeOllama,
) -> None:
    # /api/ps names them "alpha:latest" and "gamma:7b".
    ollama.preload("alpha", "gamma:7b")
    backend = discover(ollama)
    assert backend.software == "ollama"
    assert loaded() == {"alpha": True, "beta": False, "gamma:7b": True}
    assert backend.healthy


def test_the_next_check_follows_what_ollama_loaded_and_evicted(
    ollama: FakeOllama,
) -> None:
    ollama.preload("alpha")
    backend = discover(ollama)
    ollama.resident.clear()
    ollama.preload("beta")
    backend_discover_models(backend=backend)
    assert loaded() == {"alpha": False, "beta": True, "gamma:7b": False}


def test_it_probes_api_version_when_owned_by_says_nothing(ollama: FakeOllama) -> None:
    ollama.owned_by = "someone"  # a model pulled from a user's namespace
    assert discover(ollama).software == "ollama"


def test_a_failing_api_ps_keeps_the_load_state_and_the_health(
    ollama: FakeOllama,
) -> None:
    ollama.preload("beta")
    backend = discover(ollama)
    ollama.ps_status = 500
    ollama.resident.clear()
    result = backend_discover_models(backend=backend)
    assert result.ok
    backend.refresh_from_db()
    assert backend.healthy and backend.last_error == ""
    assert loaded() == {"alpha": False, "beta": True, "gamma:7b": False}


def test_other_backends_keep_loaded_empty(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.models = ["llama-8b"]
    backend = discover(fake_backend)
    assert backend.software == ""  # owned_by "fake", and no /api/version
    assert loaded() == {"llama-8b": None}
    assert fake_backend.requests("/api/ps") == []


@pytest.mark.parametrize(
    ("owner", "software"),
    [("vllm", "vllm"), ("llamacpp", "llamacpp"), ("sglang", "sglang")],
)
def test_owned_by_names_the_software(
    fake_backend: FakeBackend, owner: str, software: str
) -> None:
    fake_backend.behaviour.models = [{"id": "m", "owned_by": owner}]
    assert discover(fake_backend).software == software
    assert fake_backend.requests("/api/version") == []


def test_it_never_overwrites_the_software_staff_chose(ollama: FakeOllama) -> None:
    backend = backend_add(name="gpu01", base_url=ollama.base_url)
    Backend.objects.filter(pk=backend.pk).update(software="vllm")
    backend.refresh_from_db()
    backend_discover_models(backend=backend)
    backend.refresh_from_db()
    assert backend.software == "vllm"
    assert set(loaded().values()) == {None}


def test_it_copies_the_load_times_the_proxy_measured(ollama: FakeOllama) -> None:
    backend = discover(ollama)
    asyncio.run(
        load_seconds_note(backend_id=backend.pk, upstream_model="beta", seconds=2.5)
    )
    assert load_seconds_read(backend_id=backend.pk) == {"beta": 2.5}
    backend_discover_models(backend=backend)
    figures = dict(Deployment.objects.values_list("upstream_model", "load_seconds"))
    assert figures == {"alpha": None, "beta": 2.5, "gamma:7b": None}


def test_a_check_reads_the_routes_once_and_writes_only_what_changed(
    ollama: FakeOllama,
) -> None:
    ollama.preload("alpha")
    backend = discover(ollama)
    with CaptureQueriesContext(connection) as unchanged:
        backend_discover_models(backend=backend)
    ollama.resident.clear()
    ollama.preload("beta")
    with CaptureQueriesContext(connection) as changed:
        backend_discover_models(backend=backend)
    assert load_state_sql(unchanged) == ["SELECT"]
    # Two routes change, in one UPDATE each way; never one per route.
    assert load_state_sql(changed) == ["SELECT", "UPDATE", "UPDATE"]


def load_state_sql(captured: CaptureQueriesContext) -> list[str]:
    """The statements of catalog.loadstate: the narrow SELECT and the UPDATEs
    of `loaded` (discovery's own SELECTs read every column)."""
    return [
        q["sql"].split()[0]
        for q in captured.captured_queries
        if 'SET "loaded"' in q["sql"]
        or ('"loaded"' in q["sql"] and '"served"' not in q["sql"])
    ]
