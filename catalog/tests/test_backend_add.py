"""Registering backends: URL normalisation, update semantics, keys at rest."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from catalog.baseurl import base_url_normalise
from catalog.models import Backend
from catalog.services import backend_add


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("http://gpu01:8000/v1", "http://gpu01:8000/v1"),
        ("http://gpu01:8000/v1/", "http://gpu01:8000/v1"),
        ("  https://llm.example.org/v1  ", "https://llm.example.org/v1"),
        ("http://gpu01:8000", "http://gpu01:8000/v1"),
        ("http://gpu01:8000/", "http://gpu01:8000/v1"),
        ("https://gw.example.org/api/v1", "https://gw.example.org/api/v1"),
        ("https://g.example.org/v1beta/openai/", "https://g.example.org/v1beta/openai"),
    ],
)
def test_it_stores_base_urls_the_way_the_openai_sdk_takes_them(
    raw: str, stored: str
) -> None:
    assert base_url_normalise(raw) == stored


@pytest.mark.parametrize(
    "raw",
    [
        "gpu01:8000/v1",
        "ftp://gpu01/v1",
        "http:///v1",
        "http://user:secret@gpu01:8000/v1",
        "http://gpu01:8000/v1?key=abc",
        "http://gpu01:notaport/v1",
    ],
)
def test_it_refuses_base_urls_that_are_not_plain_http(raw: str) -> None:
    with pytest.raises(ValidationError):
        base_url_normalise(raw)


@pytest.mark.django_db
def test_it_registers_a_backend_with_defaults() -> None:
    backend = backend_add(name="gpu01", base_url="http://gpu01:8000")
    assert backend.base_url == "http://gpu01:8000/v1"
    assert backend.pool == "shared"
    assert backend.max_concurrency == 4
    assert backend.api_key == ""
    assert backend.enabled and backend.healthy


@pytest.mark.django_db
def test_re_adding_updates_only_what_is_given() -> None:
    backend_add(
        name="gpu01",
        base_url="http://gpu01:8000/v1",
        api_key="sk-backend",
        pool="dedicated",
        max_concurrency=8,
    )
    # Same host: the key may stay (another host needs it again, see
    # test_backend_key_host.py).
    again = backend_add(name="gpu01", base_url="http://gpu01:8000/api/v1")
    assert Backend.objects.count() == 1
    assert again.base_url == "http://gpu01:8000/api/v1"
    assert (again.pool, again.max_concurrency, again.api_key) == (
        "dedicated",
        8,
        "sk-backend",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bad",
    [
        {"name": "has space"},
        {"pool": "private"},
        {"max_concurrency": 0},
        {"base_url": "gpu01"},
    ],
)
def test_it_refuses_bad_registrations(bad: dict[str, Any]) -> None:
    arguments = {"name": "gpu01", "base_url": "http://gpu01:8000/v1"} | bad
    with pytest.raises(ValidationError):
        backend_add(**arguments)
    assert not Backend.objects.exists()


def stored_api_key(backend: Backend) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key FROM apiproxy_backend WHERE id = %s", [backend.pk]
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_the_api_key_is_encrypted_at_rest() -> None:
    backend = backend_add(
        name="gpu01", base_url="http://gpu01/v1", api_key="sk-backend-secret"
    )
    raw = stored_api_key(backend)
    assert "sk-backend-secret" not in raw
    assert raw.startswith("gAAAA")  # a Fernet token
    assert Backend.objects.get(pk=backend.pk).api_key == "sk-backend-secret"


@pytest.mark.django_db
def test_a_rotated_secret_key_still_reads_old_api_keys_via_fallbacks(
    settings: Any,
) -> None:
    backend = backend_add(name="gpu01", base_url="http://gpu01/v1", api_key="sk-b")
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "a-brand-new-secret-key-" + "x" * 40
    settings.SECRET_KEY_FALLBACKS = [old]
    assert Backend.objects.get(pk=backend.pk).api_key == "sk-b"
    settings.SECRET_KEY_FALLBACKS = []
    # Unreadable: empty (and logged), never an exception that breaks admin.
    assert Backend.objects.get(pk=backend.pk).api_key == ""
