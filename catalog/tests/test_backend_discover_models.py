"""Discovery against a real OpenAI-speaking fake backend on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.models import Backend, Deployment, Model
from catalog.services import (
    backend_add,
    backend_discover_all,
    backend_discover_models,
)
from tests.fakebackend import INTERNAL_SECRET, INTERNAL_URL, FakeBackend

pytestmark = pytest.mark.django_db


def register(fake: FakeBackend, name: str = "gpu01", **fields: Any) -> Backend:
    return backend_add(name=name, base_url=fake.base_url, **fields)


def caps(public_id: str) -> frozenset[str]:
    return Model.objects.get(public_id=public_id).capabilities


def test_it_creates_models_and_routes_with_capabilities_from_the_ids(
    fake_backend: FakeBackend, settings: Any
) -> None:
    fake_backend.behaviour.models = ["llama-8b", "bge-embed", "whisper-large-v3"]
    backend = register(fake_backend)
    result = backend_discover_models(backend=backend)
    assert result.ok
    assert sorted(result.created) == ["bge-embed", "llama-8b", "whisper-large-v3"]
    assert caps("llama-8b") == {"chat", "completions", "tools", "json_schema"}
    assert caps("bge-embed") == {"embeddings"}
    assert caps("whisper-large-v3") == {"transcription"}
    route = Deployment.objects.get(model__public_id="llama-8b")
    assert (route.backend, route.upstream_model, route.served) == (
        backend,
        "llama-8b",
        True,
    )
    llama = Model.objects.get(public_id="llama-8b")
    assert llama.context_window == settings.MODEL_DEFAULT_CONTEXT_WINDOW
    assert llama.everyone is True
    backend.refresh_from_db()
    assert backend.healthy and backend.last_checked_at and backend.last_error == ""


def test_it_takes_what_the_backend_reports(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.models = [
        {"id": "qwen-vl", "max_model_len": 32768, "capabilities": ["vision"]}
    ]
    backend_discover_models(backend=register(fake_backend))
    model = Model.objects.get(public_id="qwen-vl")
    assert model.capabilities == {
        "chat",
        "completions",
        "vision",
        "tools",
        "json_schema",
    }
    assert model.context_window == 32768


def test_it_sends_the_backend_api_key(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.api_key = "sk-backend"
    assert not backend_discover_models(backend=register(fake_backend)).ok
    backend = register(fake_backend, api_key="sk-backend")
    assert backend_discover_models(backend=backend).ok
    assert fake_backend.last("/v1/models").headers["authorization"] == (
        "Bearer sk-backend"
    )


def test_staff_edits_survive_rediscovery(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.models = [
        {"id": "llama", "max_model_len": 4096, "capabilities": ["completion"]}
    ]
    backend = register(fake_backend)
    backend_discover_models(backend=backend)
    Model.objects.filter(public_id="llama").update(
        supports_vision=True,
        context_window=2048,
        max_output_tokens=512,
        capabilities_locked=True,
        display_name="Llama (local)",
        everyone=False,
    )
    fake_backend.behaviour.models = [
        {"id": "llama", "max_model_len": 65536, "max_output_tokens": 9999}
    ]
    assert backend_discover_models(backend=backend).ok
    model = Model.objects.get(public_id="llama")
    assert model.supports_vision and model.context_window == 2048
    assert model.max_output_tokens == 512
    assert model.display_name == "Llama (local)" and model.everyone is False


def test_unlocked_models_follow_what_the_backend_reports(
    fake_backend: FakeBackend,
) -> None:
    fake_backend.behaviour.models = [{"id": "llama", "max_model_len": 4096}]
    backend = register(fake_backend)
    backend_discover_models(backend=backend)
    fake_backend.behaviour.models = [
        {"id": "llama", "max_model_len": 16384, "capabilities": ["vision"]}
    ]
    backend_discover_models(backend=backend)
    model = Model.objects.get(public_id="llama")
    assert model.context_window == 16384
    assert model.supports_vision


def test_a_model_no_longer_listed_is_marked_not_served_not_deleted(
    fake_backend: FakeBackend,
) -> None:
    fake_backend.behaviour.models = ["old", "kept"]
    backend = register(fake_backend)
    backend_discover_models(backend=backend)
    fake_backend.behaviour.models = ["kept"]
    result = backend_discover_models(backend=backend)
    assert result.gone == ["old"]
    route = Deployment.objects.get(model__public_id="old")
    assert route.served is False
    fake_backend.behaviour.models = ["old", "kept"]
    backend_discover_models(backend=backend)
    route.refresh_from_db()
    assert route.served is True
    assert Model.objects.filter(public_id="old").count() == 1


def test_staff_disabling_a_route_sticks(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.models = ["llama"]
    backend = register(fake_backend)
    backend_discover_models(backend=backend)
    Deployment.objects.update(enabled=False)
    backend_discover_models(backend=backend)
    assert Deployment.objects.get().enabled is False


def test_a_model_on_two_backends_gets_the_smaller_context_window(
    fake_backend_factory: Any,
) -> None:
    big, small = fake_backend_factory(), fake_backend_factory()
    big.behaviour.models = [{"id": "llama", "max_model_len": 32768}]
    small.behaviour.models = [{"id": "llama", "max_model_len": 8192}]
    backend_discover_models(backend=register(big, "big"))
    backend_discover_models(backend=register(small, "small"))
    model = Model.objects.get(public_id="llama")
    assert model.deployments.count() == 2
    assert model.context_window == 8192


def test_new_models_are_open_to_everyone_whatever_the_pool(
    fake_backend: FakeBackend,
) -> None:
    # Dedicated capacity is a routing matter (group limits), not access.
    fake_backend.behaviour.models = ["lab-model"]
    backend_discover_models(backend=register(fake_backend, pool="dedicated"))
    assert Model.objects.get(public_id="lab-model").everyone is True


def test_a_refused_connection_is_recorded_not_raised(fake_backend: FakeBackend) -> None:
    backend = register(fake_backend)
    backend_discover_models(backend=backend)
    with fake_backend.refusing():
        result = backend_discover_models(backend=backend)
    assert not result.ok
    assert result.error == "Connection refused or host unreachable"
    backend.refresh_from_db()
    assert backend.healthy is False
    assert backend.last_error == result.error
    # The catalog is left as it was: the backend may be back in a minute.
    assert Deployment.objects.filter(served=True).count() == 3


def test_a_backend_error_is_recorded_without_its_body(
    fake_backend: FakeBackend,
) -> None:
    fake_backend.behaviour.models_status = 500
    backend = register(fake_backend)
    result = backend_discover_models(backend=backend)
    assert result.error == "HTTP 500 from the backend"
    backend.refresh_from_db()
    assert INTERNAL_URL not in backend.last_error
    assert INTERNAL_SECRET not in backend.last_error


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ("<html>proxy login</html>", "The answer to GET /models is not JSON"),
        ({"detail": "nope"}, "The answer to GET /models is not an OpenAI model list"),
    ],
)
def test_an_answer_that_is_not_a_model_list_is_recorded(
    fake_backend: FakeBackend, payload: object, error: str
) -> None:
    fake_backend.behaviour.models_payload = payload
    result = backend_discover_models(backend=register(fake_backend))
    assert (result.ok, result.error) == (False, error)


def test_a_silent_backend_times_out(fake_backend: FakeBackend, settings: Any) -> None:
    settings.MODEL_DISCOVERY_TIMEOUT_SECONDS = 1
    fake_backend.behaviour.models_delay = 3
    result = backend_discover_models(backend=register(fake_backend))
    assert (result.ok, result.error) == (False, "No answer within 1 s")


def test_discover_all_goes_on_past_a_dead_backend_and_skips_disabled_ones(
    fake_backend: FakeBackend,
) -> None:
    backend_add(name="dead", base_url="http://127.0.0.1:9/v1")
    off = backend_add(name="off", base_url="http://127.0.0.1:9/v1")
    Backend.objects.filter(pk=off.pk).update(enabled=False)
    register(fake_backend, "alive")
    results = {result.backend: result for result in backend_discover_all()}
    assert set(results) == {"dead", "alive"}
    assert results["alive"].ok and not results["dead"].ok
