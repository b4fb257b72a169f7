"""A backend's API key stays with its host: moving a backend to another
scheme, host or port needs the key again, in the service, the command and
admin, before discovery can hand the old host's key to the new one."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from catalog.models import Backend
from catalog.services import backend_add
from catalog.tests.test_admin import backend_form
from tests.fakebackend import FakeBackend

pytestmark = pytest.mark.django_db

OLD_KEY = "sk-key-of-the-old-host"


def keys_sent(fake: FakeBackend) -> list[str | None]:
    """Each distinct Authorization header the host got (discovery asks it for
    /v1/models, then, not knowing what it runs, for Ollama's /api/version)."""
    return list(dict.fromkeys(r.headers.get("authorization") for r in fake.requests()))


@pytest.mark.parametrize(
    "moved_to",
    [
        "http://gpu02:8000/v1",  # another host
        "http://gpu01:8001/v1",  # another port
        "https://gpu01:8000/v1",  # another scheme
        "http://gpu01.example.org:8000/v1",  # another name, maybe another machine
    ],
)
def test_moving_a_backend_with_a_key_elsewhere_needs_the_key_again(
    moved_to: str,
) -> None:
    backend_add(name="gpu01", base_url="http://gpu01:8000/v1", api_key=OLD_KEY)
    with pytest.raises(ValidationError, match="Pass the API key again"):
        backend_add(name="gpu01", base_url=moved_to)
    stored = Backend.objects.get(name="gpu01")
    assert (stored.base_url, stored.api_key) == ("http://gpu01:8000/v1", OLD_KEY)


@pytest.mark.parametrize(
    "same_origin",
    ["http://gpu01:8000/api/v1", "http://GPU01:8000/v1/", "http://gpu01:8000"],
)
def test_a_new_path_on_the_same_host_keeps_the_key(same_origin: str) -> None:
    backend_add(name="gpu01", base_url="http://gpu01:8000/v1", api_key=OLD_KEY)
    assert backend_add(name="gpu01", base_url=same_origin).api_key == OLD_KEY
    backend_add(name="web", base_url="http://web/v1", api_key=OLD_KEY)
    assert backend_add(name="web", base_url="http://web:80/v2").api_key == OLD_KEY


def test_a_move_with_a_new_key_or_an_empty_one_is_taken() -> None:
    backend_add(name="gpu01", base_url="http://gpu01:8000/v1", api_key=OLD_KEY)
    moved = backend_add(name="gpu01", base_url="http://gpu02/v1", api_key="sk-new")
    assert (moved.base_url, moved.api_key) == ("http://gpu02/v1", "sk-new")
    keyless = backend_add(name="gpu01", base_url="http://gpu03/v1", api_key="")
    assert (keyless.base_url, keyless.api_key) == ("http://gpu03/v1", "")
    # Nothing to protect: a backend without a key moves freely.
    assert backend_add(name="gpu01", base_url="http://gpu04/v1").api_key == ""


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_addbackend_refuses_to_move_a_keyed_backend_without_api_key(
    fake_backend_factory: Any,
) -> None:
    old_host, new_host = fake_backend_factory(), fake_backend_factory()
    old_host.behaviour.api_key = OLD_KEY
    run("addbackend", "gpu01", old_host.base_url, "--api-key", OLD_KEY)
    with pytest.raises(CommandError, match="--api-key"):
        run("addbackend", "gpu01", new_host.base_url)
    assert new_host.requests() == [], "discovery never asked the new host"
    assert Backend.objects.get(name="gpu01").base_url == old_host.base_url
    output = run("addbackend", "gpu01", new_host.base_url, "--api-key", "sk-new")
    assert "3 model(s) served" in output
    assert keys_sent(new_host) == ["Bearer sk-new"]


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_admin_asks_for_the_key_again_when_the_base_url_moves_host(
    staff_client: Client, fake_backend_factory: Any
) -> None:
    old_host, new_host = fake_backend_factory(), fake_backend_factory()
    backend = backend_add(name="gpu01", base_url=old_host.base_url, api_key=OLD_KEY)
    url = reverse("admin:catalog_backend_change", args=[backend.pk])
    refused = staff_client.post(url, backend_form(backend, base_url=new_host.base_url))
    assert refused.status_code == 200
    assert "the stored key is never sent there" in str(
        refused.context["adminform"].form.errors["api_key"]
    )
    backend.refresh_from_db()
    assert (backend.base_url, backend.api_key) == (old_host.base_url, OLD_KEY)
    assert new_host.requests() == []
    moved = staff_client.post(
        url, backend_form(backend, base_url=new_host.base_url, api_key="sk-new")
    )
    assert moved.status_code == 302
    backend.refresh_from_db()
    assert (backend.base_url, backend.api_key) == (new_host.base_url, "sk-new")
    assert keys_sent(new_host) == ["Bearer sk-new"]


def test_admin_moves_a_backend_whose_key_is_removed(
    staff_client: Client, fake_backend_factory: Any
) -> None:
    old_host, new_host = fake_backend_factory(), fake_backend_factory()
    backend = backend_add(name="gpu01", base_url=old_host.base_url, api_key=OLD_KEY)
    url = reverse("admin:catalog_backend_change", args=[backend.pk])
    response = staff_client.post(
        url, backend_form(backend, base_url=new_host.base_url, clear_api_key="on")
    )
    assert response.status_code == 302
    backend.refresh_from_db()
    assert (backend.base_url, backend.api_key) == (new_host.base_url, "")
    assert keys_sent(new_host) == [None]


def test_admin_keeps_the_key_for_a_new_path_on_the_same_host(
    staff_client: Client, fake_backend: FakeBackend
) -> None:
    backend = backend_add(name="gpu01", base_url=fake_backend.base_url, api_key=OLD_KEY)
    url = reverse("admin:catalog_backend_change", args=[backend.pk])
    response = staff_client.post(
        url, backend_form(backend, base_url=fake_backend.root_url + "/api/v1")
    )
    assert response.status_code == 302
    backend.refresh_from_db()
    assert backend.api_key == OLD_KEY
    assert keys_sent(fake_backend) == [f"Bearer {OLD_KEY}"]
