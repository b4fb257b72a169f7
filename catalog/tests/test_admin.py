"""The catalog in Django admin, as staff use it (Django's test client)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from catalog.models import Backend, Model
from catalog.services import backend_add, backend_discover_models
from tests.factories import backend_make, model_make
from tests.fakebackend import FakeBackend

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:catalog_backend_changelist",
        "admin:catalog_backend_add",
        "admin:catalog_model_changelist",
        "admin:catalog_model_add",
        "admin:catalog_deployment_changelist",
    ],
)
def test_catalog_pages_render_for_staff(admin_client_: Client, url_name: str) -> None:
    model_make(public_id="llama")
    assert admin_client_.get(reverse(url_name)).status_code == 200


def test_model_list_filters_and_search_render(admin_client_: Client) -> None:
    model_make(public_id="llama")
    model_make(public_id="bge-embed", supports_embeddings=True)
    url = reverse("admin:catalog_model_changelist")
    found = admin_client_.get(url, {"q": "bge"}).context["cl"].result_list
    assert [model.public_id for model in found] == ["bge-embed"]
    backend = Backend.objects.get(name="backend-llama")
    filtered = admin_client_.get(url, {"deployments__backend__id__exact": backend.pk})
    assert [model.public_id for model in filtered.context["cl"].result_list] == [
        "llama"
    ]


def test_the_backend_api_key_is_never_shown_back(admin_client_: Client) -> None:
    backend = backend_make(api_key="sk-very-secret-backend-key")
    url = reverse("admin:catalog_backend_change", args=[backend.pk])
    assert "sk-very-secret-backend-key" not in admin_client_.get(url).content.decode()
    listing = admin_client_.get(reverse("admin:catalog_backend_changelist"))
    assert "sk-very-secret-backend-key" not in listing.content.decode()


def messages_of(response: Any) -> list[str]:
    """The messages admin showed (before its template capitalises them)."""
    return [str(message) for message in response.context["messages"]]


def backend_form(backend: Backend, **changes: Any) -> dict[str, Any]:
    return {
        "name": backend.name,
        "base_url": backend.base_url,
        "api_key": "",
        "enabled": "on",
        "pool": backend.pool,
        "max_concurrency": backend.max_concurrency,
    } | changes


def test_saving_with_an_empty_key_field_keeps_the_key(admin_client_: Client) -> None:
    backend = backend_make(api_key="sk-keep")
    url = reverse("admin:catalog_backend_change", args=[backend.pk])
    response = admin_client_.post(url, backend_form(backend, max_concurrency=9))
    assert response.status_code == 302
    backend.refresh_from_db()
    assert (backend.api_key, backend.max_concurrency) == ("sk-keep", 9)
    admin_client_.post(url, backend_form(backend, api_key="sk-new"))
    backend.refresh_from_db()
    assert backend.api_key == "sk-new"
    admin_client_.post(url, backend_form(backend, clear_api_key="on"))
    backend.refresh_from_db()
    assert backend.api_key == ""


def test_adding_a_backend_in_admin_normalises_its_url_and_discovers(
    admin_client_: Client, fake_backend: FakeBackend
) -> None:
    fake_backend.behaviour.models = ["llama"]
    response = admin_client_.post(
        reverse("admin:catalog_backend_add"),
        {
            "name": "gpu01",
            "base_url": fake_backend.root_url + "/",
            "api_key": "",
            "enabled": "on",
            "pool": "shared",
            "max_concurrency": 4,
        },
        follow=True,
    )
    assert "gpu01: 1 model(s) served, new: llama" in messages_of(response)
    assert Backend.objects.get().base_url == fake_backend.base_url
    assert Model.objects.filter(public_id="llama").exists()


def test_the_refresh_action_reports_each_backend(
    admin_client_: Client, fake_backend: FakeBackend
) -> None:
    alive = backend_add(name="alive", base_url=fake_backend.base_url)
    dead = backend_make(name="dead")
    response = admin_client_.post(
        reverse("admin:catalog_backend_changelist"),
        {"action": "refresh_discovery", "_selected_action": [alive.pk, dead.pk]},
        follow=True,
    )
    shown = messages_of(response)
    assert shown == [
        "alive: 3 model(s) served, new: fake-chat, fake-embed, whisper-fake",
        "dead: unreachable: Connection refused or host unreachable",
    ]


def model_form(model: Model, **changes: Any) -> dict[str, Any]:
    form = {
        "public_id": model.public_id,
        "display_name": model.display_name,
        "enabled": "on",
        "everyone": "on",
        "context_window": model.context_window,
        "max_output_tokens": "",
        "supports_chat": "on",
        "supports_completions": "on",
        "supports_tools": "on",
        "supports_json_schema": "on",
        "recommended_params": "{}",
        "default_params": "{}",
        "quota_weight": "1",
        # Fields with callable defaults carry their initial value along, as a
        # browser posts it back.
        "initial-context_window": model.context_window,
        "initial-recommended_params": "{}",
        "initial-default_params": "{}",
        "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "0",
    }
    form |= changes
    return {key: value for key, value in form.items() if value is not None}


def test_staff_capability_edits_are_kept_from_discovery(
    admin_client_: Client, fake_backend: FakeBackend
) -> None:
    fake_backend.behaviour.models = [{"id": "llama", "max_model_len": 4096}]
    backend = backend_add(name="gpu01", base_url=fake_backend.base_url)
    backend_discover_models(backend=backend)
    model = Model.objects.get(public_id="llama")
    url = reverse("admin:catalog_model_change", args=[model.pk])
    lab = Group.objects.create(name="lab")
    response = admin_client_.post(
        url,
        model_form(
            model,
            supports_vision="on",
            everyone=None,
            access_groups=[lab.pk],
            **{"deployments-TOTAL_FORMS": "1", "deployments-INITIAL_FORMS": "1"},
            **{
                "deployments-0-id": model.deployments.get().pk,
                "deployments-0-model": model.pk,
                "deployments-0-backend": backend.pk,
                "deployments-0-upstream_model": "llama",
                "deployments-0-enabled": "on",
            },
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    model.refresh_from_db()
    assert model.capabilities_locked and model.supports_vision
    assert list(model.access_groups.all()) == [lab]
    fake_backend.behaviour.models = [{"id": "llama", "max_model_len": 65536}]
    backend_discover_models(backend=backend)
    model.refresh_from_db()
    assert model.supports_vision and model.context_window == 4096


def test_editing_only_the_display_name_does_not_lock(admin_client_: Client) -> None:
    model = model_make(public_id="llama")
    url = reverse("admin:catalog_model_change", args=[model.pk])
    response = admin_client_.post(url, model_form(model, display_name="Llama"))
    assert response.status_code == 302, response.content.decode()[:2000]
    model.refresh_from_db()
    assert model.display_name == "Llama" and not model.capabilities_locked


@pytest.mark.parametrize("bad", ["bell\x07model", "zero\u200bwidth", " padded"])
def test_a_model_id_staff_type_follows_discovery_s_rule(bad: str) -> None:
    """Ids reach pages, log lines and SSE comments: control and invisible
    characters are refused in admin as discovery refuses them."""
    from django.core.exceptions import ValidationError

    model = Model(public_id=bad)
    with pytest.raises(ValidationError) as refused:
        model.full_clean(exclude=["context_window"])
    assert "public_id" in refused.value.message_dict
