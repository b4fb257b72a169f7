"""`/api/keys/`: the self-service JSON API (session + CSRF, DRF)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, User
from accounts.selectors import apikey_authenticate
from accounts.tests.conftest import login
from tests.factories import apikey_make

pytestmark = pytest.mark.django_db

KEYS = "/api/keys/"


@pytest.fixture
def api(alice: User) -> Client:
    """alice, logged in through the form, with CSRF enforced as in a browser."""
    client = login(Client(), alice)
    client.handler.enforce_csrf_checks = True
    client.get("/settings/account/")  # sets the csrftoken cookie
    return client


def post(client: Client, url: str, data: object = None) -> object:
    return client.post(
        url,
        data if data is not None else {},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )


def test_it_lists_only_the_users_keys_without_secrets(
    api: Client, alice: User, bob: User
) -> None:
    mine = apikey_make(user=alice, name="laptop")
    apikey_make(user=bob, name="bobs")
    response = api.get(KEYS)
    assert response.status_code == 200
    [item] = response.json()["data"]
    assert item["name"] == "laptop"
    assert item["display"] == mine.key.display
    assert item["state"] == "active"
    assert set(item) == {
        "id",
        "name",
        "display",
        "state",
        "allowed_models",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "rolled_from",
    }
    assert mine.raw not in response.content.decode()


def test_creating_returns_the_key_once(api: Client) -> None:
    response = post(api, KEYS, {"name": "script", "allowed_models": ["qwen"]})
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    key = apikey_authenticate(raw_key=body["key"])
    assert key is not None and key.pk == body["id"]
    assert body["allowed_models"] == ["qwen"] and body["expiry_capped"] is False
    assert body["key"] not in api.get(KEYS).content.decode()
    assert body["key"] not in api.get(f"{KEYS}{key.pk}/").content.decode()


def test_the_lifetime_cap_is_reported(api: Client, settings) -> None:
    settings.API_KEY_MAX_LIFETIME_DAYS = 7
    later = (timezone.now() + timedelta(days=90)).isoformat()
    body = post(api, KEYS, {"name": "x", "expires_at": later}).json()
    assert body["expiry_capped"] is True
    assert ApiKey.objects.get().expires_at <= timezone.now() + timedelta(days=7)


def test_csrf_is_enforced(api: Client) -> None:
    response = api.post(KEYS, {"name": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    assert not ApiKey.objects.exists()


def test_anonymous_callers_are_refused(client: Client) -> None:
    response = client.get(KEYS)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_authenticated"


def test_an_api_key_cannot_be_used_to_mint_keys(alice: User) -> None:
    raw = apikey_make(user=alice).raw
    response = Client().post(
        KEYS,
        {"name": "x"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 403
    assert raw not in response.content.decode()
    assert ApiKey.objects.count() == 1


@pytest.mark.parametrize(
    "extra",
    [
        {"user": 2},
        {"owner": 2},
        {"digest": "0" * 64},
        {"lookup_id": "AAAAAAAAAA"},
        {"revoked_at": None},
        {"rpm": 100000},
    ],
)
def test_fields_a_client_may_not_set_are_refused(
    api: Client, bob: User, extra: dict
) -> None:
    response = post(api, KEYS, {"name": "x", **extra})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == list(extra)
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "expires_at": "yesterday"}, "expires_at"),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "allowed_models": "qwen"}, "allowed_models"),
        ({"name": "x", "allowed_models": []}, "allowed_models"),
        ({"name": "x", "allowed_models": ["a b"]}, "allowed_models"),
    ],
)
def test_invalid_input_names_the_field(api: Client, data: dict, field: str) -> None:
    response = post(api, KEYS, data)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["message"] == "Invalid input."
    assert field in error["fields"]


def test_a_json_body_that_is_not_an_object_is_a_clear_400(api: Client) -> None:
    for body in ("[1, 2]", "not json", '"name"'):
        response = api.post(
            KEYS,
            body,
            content_type="application/json",
            HTTP_X_CSRFTOKEN=api.cookies["csrftoken"].value,
        )
        assert response.status_code == 400
        assert "error" in response.json()


def test_revoke_and_roll(api: Client, alice: User) -> None:
    first = apikey_make(user=alice)
    response = post(api, f"{KEYS}{first.key.pk}/roll/", {"grace_seconds": 600})
    assert response.status_code == 201
    rolled = response.json()
    assert rolled["rolled_from"] == first.key.pk
    assert apikey_authenticate(raw_key=first.raw) is not None  # grace
    response = post(api, f"{KEYS}{first.key.pk}/revoke/")
    assert response.status_code == 200
    assert response.json()["state"] == "revoked"
    assert apikey_authenticate(raw_key=first.raw) is None
    assert apikey_authenticate(raw_key=rolled["key"]) is not None
    again = post(api, f"{KEYS}{first.key.pk}/roll/")
    assert again.status_code == 400
    assert "key" in again.json()["error"]["fields"]


def test_another_users_key_is_not_found(api: Client, bob: User) -> None:
    theirs = apikey_make(user=bob)
    for url, method in [
        (f"{KEYS}{theirs.key.pk}/", "get"),
        (f"{KEYS}{theirs.key.pk}/revoke/", "post"),
        (f"{KEYS}{theirs.key.pk}/roll/", "post"),
    ]:
        response = api.get(url) if method == "get" else post(api, url)
        assert response.status_code == 404
        assert response.json() == {
            "error": {"code": "not_found", "message": "Not found."}
        }
    assert apikey_authenticate(raw_key=theirs.raw) == theirs.key


def test_creating_after_a_stale_login_asks_to_reauthenticate(
    api: Client, alice: User, settings
) -> None:
    key = apikey_make(user=alice).key
    later = timezone.now() + timedelta(
        seconds=settings.ACCOUNT_REAUTHENTICATION_TIMEOUT + 1
    )
    with time_machine.travel(later):
        for url in (KEYS, f"{KEYS}{key.pk}/roll/"):
            response = post(api, url, {"name": "x"} if url == KEYS else {})
            assert response.status_code == 403
            error = response.json()["error"]
            assert error["code"] == "reauthentication_required"
            assert error["reauthenticate_url"] == "/accounts/reauthenticate/"
        # Revoking only takes power away: no password needed.
        assert post(api, f"{KEYS}{key.pk}/revoke/").status_code == 200
    assert ApiKey.objects.count() == 1
