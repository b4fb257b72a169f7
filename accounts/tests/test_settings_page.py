"""Settings > Account through the Django test client: list, create (key shown
once), revoke with confirmation, roll with a grace period, reauthentication."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, User
from accounts.selectors import apikey_authenticate
from accounts.tests.conftest import login
from catalog.models import Backend, Deployment, Model
from tests.factories import PASSWORD, apikey_make

pytestmark = pytest.mark.django_db

PAGE = "/settings/account/"
CREATE = "/settings/account/keys/"
CREATED = "/settings/account/keys/new/"


def shown_key(response) -> str:  # type: ignore[no-untyped-def]
    match = re.search(
        r'<code id="new-key"[^>]*>([^<]+)</code>', response.content.decode()
    )
    assert match, response.content.decode()[:2000]
    return match.group(1)


def test_anonymous_visitors_are_sent_to_log_in(client: Client) -> None:
    response = client.get(PAGE)
    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]
    assert client.post(CREATE, {"name": "x"}).status_code == 302
    assert not ApiKey.objects.exists()


def test_the_top_bar_links_to_settings(alice_client: Client) -> None:
    assert b'data-nav="settings"' in alice_client.get("/").content


def test_the_page_lists_keys_by_display_form_only(
    alice_client: Client, alice: User, bob: User
) -> None:
    mine = apikey_make(user=alice, name="laptop", allowed_models=["qwen"])
    revoked = apikey_make(user=alice, name="old one")
    revoked.key.revoked_at = timezone.now()
    revoked.key.save()
    theirs = apikey_make(user=bob, name="bobs key")
    page = alice_client.get(PAGE).content.decode()
    assert "laptop" in page and mine.key.display in page and "qwen" in page
    assert "old one" in page and "revoked" in page
    assert mine.raw not in page and mine.raw[7:17] not in page
    assert "bobs key" not in page and theirs.key.display not in page
    assert 'data-nav="settings"' in page


def test_creating_a_key_shows_it_once_with_snippets(alice_client: Client) -> None:
    response = alice_client.post(CREATE, {"name": "laptop", "models": ""}, follow=True)
    assert response.redirect_chain == [(CREATED, 302)]
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = shown_key(response)
    key = apikey_authenticate(raw_key=raw)
    assert key is not None and key.name == "laptop" and key.allowed_models is None
    page = response.content.decode()
    assert 'base_url="http://testserver/v1"' in page
    assert "curl http://testserver/v1/chat/completions" in page
    assert f"Authorization: Bearer {raw}" in page
    assert f"apiKey: {raw}" in page
    assert "apiBase: http://testserver/v1" in page
    # The copy button's script is a static file; no inline script anywhere.
    assert re.search(r'<script src="[^"]*js/copy\.js"', page)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    # Never again: not on the list page, not anywhere after.
    assert raw not in alice_client.get(PAGE).content.decode()
    assert raw[7:-6] not in alice_client.get(PAGE).content.decode()


def test_snippets_use_the_configured_site_url(alice_client: Client, settings) -> None:
    settings.SITE_URL = "https://llm.example.edu"
    page = alice_client.post(CREATE, {"name": "laptop"}, follow=True).content.decode()
    assert 'base_url="https://llm.example.edu/v1"' in page


def test_models_and_expiry_from_the_form_are_kept(alice_client: Client) -> None:
    day = (timezone.localdate() + timedelta(days=10)).isoformat()
    response = alice_client.post(
        CREATE,
        {"name": "ci", "expires_on": day, "models": "qwen, llama ,"},
        follow=True,
    )
    raw = shown_key(response)
    key = ApiKey.objects.get(name="ci")
    assert key.allowed_models == ["qwen", "llama"]
    # The end of the chosen day, shown as that day.
    assert timezone.localtime(key.expires_at).date().isoformat() == day
    assert timezone.localtime(key.expires_at).strftime("%H:%M:%S") == "23:59:59"
    assert f"{day} 23:59 UTC" in response.content.decode()
    assert 'model="qwen"' in response.content.decode()
    assert apikey_authenticate(raw_key=raw) == key


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": ""}, "This field is required"),
        ({"name": "x", "expires_on": "2001-01-01"}, "must be in the future"),
        ({"name": "x", "models": "a b"}, "cannot hold spaces"),
    ],
)
def test_invalid_input_shows_the_form_again(
    alice_client: Client, data: dict, message: str
) -> None:
    response = alice_client.post(CREATE, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'id="new-key"' not in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_lifetime_cap_is_explained_and_applied(
    alice_client: Client, settings
) -> None:
    settings.API_KEY_MAX_LIFETIME_DAYS = 30
    assert "at most 30 days" in alice_client.get(PAGE).content.decode()
    response = alice_client.post(CREATE, {"name": "laptop"}, follow=True)
    assert "this site's limit" in response.content.decode()
    key = ApiKey.objects.get()
    assert key.expires_at <= timezone.now() + timedelta(days=30)


def test_a_stale_login_must_give_the_password_again(
    alice_client: Client, settings
) -> None:
    later = timezone.now() + timedelta(
        seconds=settings.ACCOUNT_REAUTHENTICATION_TIMEOUT + 5
    )
    with time_machine.travel(later):
        response = alice_client.post(CREATE, {"name": "after lunch"})
        assert response.status_code == 302
        assert reverse("account_reauthenticate") in response["Location"]
        assert not ApiKey.objects.exists()
        resumed = alice_client.post(
            response["Location"], {"password": PASSWORD}, follow=True
        )
    assert resumed.status_code == 200
    raw = shown_key(resumed)
    assert apikey_authenticate(raw_key=raw).name == "after lunch"


def test_a_session_without_a_login_record_must_reauthenticate(
    client: Client, alice: User
) -> None:
    client.force_login(alice)
    response = client.post(CREATE, {"name": "x"})
    assert response.status_code == 302
    assert reverse("account_reauthenticate") in response["Location"]


def test_revoking_asks_for_confirmation_first(
    alice_client: Client, alice: User
) -> None:
    issued = apikey_make(user=alice, name="laptop")
    url = f"/settings/account/keys/{issued.key.pk}/revoke/"
    confirm = alice_client.get(url)
    assert confirm.status_code == 200
    assert "Revoke “laptop”?" in confirm.content.decode()
    assert apikey_authenticate(raw_key=issued.raw) is not None
    response = alice_client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == PAGE
    assert "Revoked “laptop”" in response.content.decode()
    assert apikey_authenticate(raw_key=issued.raw) is None


def test_rolling_shows_the_new_key_and_keeps_the_old_for_the_grace(
    alice_client: Client, alice: User
) -> None:
    old = apikey_make(user=alice, name="laptop")
    url = f"/settings/account/keys/{old.key.pk}/roll/"
    assert "Grace period" in alice_client.get(url).content.decode()
    response = alice_client.post(url, {"grace_seconds": "3600"}, follow=True)
    assert response.redirect_chain == [(CREATED, 302)]
    assert "no-store" in response["Cache-Control"]
    new_raw = shown_key(response)
    assert "keeps working until" in response.content.decode()
    assert apikey_authenticate(raw_key=new_raw).rolled_from == old.key
    assert apikey_authenticate(raw_key=old.raw) == old.key
    # Rolling the same key twice is refused on the page.
    again = alice_client.post(url, {"grace_seconds": "0"})
    assert again.status_code == 400
    assert "already rolled" in again.content.decode()


def test_another_users_key_is_not_found(alice_client: Client, bob: User) -> None:
    theirs = apikey_make(user=bob)
    for action in ("revoke", "roll"):
        url = f"/settings/account/keys/{theirs.key.pk}/{action}/"
        assert alice_client.get(url).status_code == 404
        assert alice_client.post(url, {"grace_seconds": "0"}).status_code == 404
    assert apikey_authenticate(raw_key=theirs.raw) == theirs.key
    assert ApiKey.objects.count() == 1


def test_a_fresh_login_from_the_login_form_counts(client: Client, alice: User) -> None:
    login(client, alice)
    assert client.post(CREATE, {"name": "fresh"})["Location"] == CREATED


def test_the_form_offers_only_the_models_the_user_may_use(
    alice_client: Client,
) -> None:
    backend = Backend.objects.create(name="gpu01", base_url="http://127.0.0.1:9/v1")
    for public_id, everyone in [("qwen", True), ("secret-model", False)]:
        model = Model.objects.create(public_id=public_id, everyone=everyone)
        Deployment.objects.create(
            model=model, backend=backend, upstream_model=public_id
        )
    page = alice_client.get(PAGE).content.decode()
    assert 'value="qwen"' in page and "secret-model" not in page
    response = alice_client.post(CREATE, {"name": "x", "models": ["qwen"]}, follow=True)
    assert ApiKey.objects.get(name="x").allowed_models == ["qwen"]
    assert 'model="qwen"' in response.content.decode()
    response = alice_client.post(CREATE, {"name": "y", "models": ["secret-model"]})
    assert response.status_code == 400
    assert not ApiKey.objects.filter(name="y").exists()


def test_reloading_the_created_page_makes_no_second_key(alice_client: Client) -> None:
    created = alice_client.post(CREATE, {"name": "laptop"}, follow=True)
    raw = shown_key(created)
    reloaded = alice_client.get(CREATED, follow=True)
    assert reloaded.redirect_chain == [(PAGE, 302)]
    assert raw not in reloaded.content.decode()
    assert 'id="new-key"' not in reloaded.content.decode()
    assert ApiKey.objects.count() == 1
    assert "portico_key_shown" not in alice_client.session


def test_a_key_left_unshown_expires_from_the_session(alice_client: Client) -> None:
    alice_client.post(CREATE, {"name": "laptop"})
    with time_machine.travel(timezone.now() + timedelta(minutes=10)):
        late = alice_client.get(CREATED)
    assert late["Location"] == PAGE
    assert "portico_key_shown" not in alice_client.session


def test_a_key_waiting_to_be_shown_is_never_in_the_session_store(
    alice_client: Client,
) -> None:
    """Between the POST and the GET the raw key sits in the cache, which
    forgets it by itself; the session row (kept for weeks) holds a token."""
    from django.contrib.sessions.models import Session

    alice_client.post(CREATE, {"name": "laptop"})
    stored = " ".join(str(session.get_decoded()) for session in Session.objects.all())
    assert "portico_key_shown" in stored and "sk-" not in stored
    raw = shown_key(alice_client.get(CREATED))
    assert raw.startswith("sk-")


def test_the_account_links_to_password_and_email_changes(
    alice_client: Client, settings
) -> None:
    page = alice_client.get(PAGE).content.decode()
    assert reverse("account_change_password") in page
    assert reverse("account_email") in page
    settings.LOCAL_LOGIN = "off"
    page = alice_client.get(PAGE).content.decode()
    assert reverse("account_change_password") not in page
    assert reverse("account_email") in page
