"""What operators decide about sign-in: whether first sign-ins make accounts
(REGISTRATION_MODE), who may use a password (LOCAL_LOGIN), and how long keys
work without a fresh sign-in through the provider (SSO_REVALIDATE_DAYS)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from allauth.socialaccount.models import SocialAccount
from django.test import Client
from django.utils import timezone

from accounts.models import User
from accounts.services import apikey_cache_invalidate
from sso.tests.oidcflow import oidc_app_register, oidc_sign_in, provider_for, researcher
from tests.factories import PASSWORD, apikey_make, user_make

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def idp(portal_server: Any) -> Iterator[Any]:
    users = {"ada": researcher("ada", email="ada@uni.example", groups=["faculty"])}
    with provider_for(portal_server.url, users) as provider:
        oidc_app_register(provider)
        yield provider


def test_closed_registration_refuses_a_first_sign_in_but_not_a_linked_account(
    portal_server: Any, idp: Any, settings: Any
) -> None:
    oidc_sign_in(portal_server.url, username="ada")  # linked while open
    settings.REGISTRATION_MODE = "closed"
    again = oidc_sign_in(portal_server.url, username="ada")
    assert again.final.status_code == 302
    User.objects.all().delete()
    refused = oidc_sign_in(portal_server.url, username="ada")
    assert refused.final.status_code == 200 and "closed" in refused.final.text.lower()
    assert not User.objects.exists()


def test_approval_registration_holds_a_first_sign_in_until_staff_approve(
    portal_server: Any, idp: Any, settings: Any
) -> None:
    settings.REGISTRATION_MODE = "approval"
    held = oidc_sign_in(portal_server.url, username="ada")
    user = User.objects.get(email="ada@uni.example")
    assert not user.is_active and user.pending_approval
    assert held.client.get("/settings/account/").status_code == 302


def _models(portal_url: str, key: str) -> httpx.Response:
    return httpx.get(
        f"{portal_url}/v1/models", headers={"Authorization": f"Bearer {key}"}
    )


def test_keys_pause_when_the_provider_sign_in_is_too_old_and_resume_after_one(
    portal_server: Any, idp: Any, settings: Any
) -> None:
    settings.SSO_REVALIDATE_DAYS = 30
    oidc_sign_in(portal_server.url, username="ada")
    ada = User.objects.get(email="ada@uni.example")
    key = apikey_make(user=ada).raw
    assert _models(portal_server.url, key).status_code == 200

    SocialAccount.objects.filter(user=ada).update(
        last_login=timezone.now() - timedelta(days=31)
    )
    apikey_cache_invalidate()
    paused = _models(portal_server.url, key)
    assert paused.status_code == 401
    error = paused.json()["error"]
    assert error["code"] == "sign_in_required"
    assert "Sign in once in the browser" in error["message"]
    assert "30 days" in error["message"]

    oidc_sign_in(portal_server.url, username="ada")
    deadline = time.monotonic() + 2
    while _models(portal_server.url, key).status_code != 200:
        assert time.monotonic() < deadline, "the key did not come back within 2 s"
        time.sleep(0.05)


def test_keys_of_local_accounts_never_pause(portal_server: Any, settings: Any) -> None:
    settings.SSO_REVALIDATE_DAYS = 1
    key = apikey_make(user=user_make(username="carol")).raw
    assert _models(portal_server.url, key).status_code == 200


def _password_login(username: str) -> Any:
    return Client().post("/accounts/login/", {"login": username, "password": PASSWORD})


def test_staff_only_local_login_lets_staff_in_and_sends_researchers_to_sso(
    settings: Any,
) -> None:
    settings.LOCAL_LOGIN = "staff-only"
    user_make(username="rita")
    user_make(username="sam", is_staff=True)
    refused = _password_login("rita")
    assert refused.status_code == 403
    assert b'id="local-login-refused"' in refused.content
    assert _password_login("sam").status_code == 302
    page = Client().get("/accounts/login/").content.decode()
    assert 'id="staff-login"' in page and "Sign up" not in page
    assert Client().get("/accounts/signup/").status_code == 200
    assert b"closed" in Client().get("/accounts/signup/").content.lower()


def test_local_login_off_refuses_every_password_and_hides_the_form(
    settings: Any,
) -> None:
    settings.LOCAL_LOGIN = "off"
    user_make(username="sam", is_staff=True)
    assert _password_login("sam").status_code == 403
    page = Client().get("/accounts/login/").content.decode()
    assert 'name="password"' not in page


def test_local_login_on_shows_the_form_and_sign_up(settings: Any) -> None:
    user_make(username="rita")
    page = Client().get("/accounts/login/").content.decode()
    assert 'name="password"' in page and "Sign up" in page
    assert _password_login("rita").status_code == 302


def test_a_signed_in_user_connects_an_institution_to_their_account(
    portal_server: Any, idp: Any
) -> None:
    from django.contrib.auth.models import Group

    from sso.models import ClaimGroupRule
    from sso.tests.oidcflow import form_fields, provider_login

    ClaimGroupRule.objects.create(
        claim="groups", value="faculty", group=Group.objects.create(name="Dedicated")
    )
    alice = user_make(username="alice")
    client = httpx.Client(base_url=portal_server.url, follow_redirects=False)
    token = form_fields(client.get("/accounts/login/").text)["csrfmiddlewaretoken"]
    signed_in = client.post(
        "/accounts/login/",
        data={"login": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert signed_in.status_code == 302
    page = client.get("/accounts/institutions/?process=connect").text
    assert 'name="process" value="connect"' in page
    started = client.post(
        "/accounts/institutions/start/",
        data={
            "csrfmiddlewaretoken": form_fields(page)["csrfmiddlewaretoken"],
            "provider": "testuni",
            "process": "connect",
        },
    )
    callback = provider_login(client, started.headers["location"], username="ada")
    assert client.get(callback).status_code == 302
    account = SocialAccount.objects.get(provider="testuni")
    assert account.user == alice  # ada's address differs: connected, not matched
    assert User.objects.count() == 1
    # The provider's rules apply from the moment it is connected.
    assert list(alice.groups.values_list("name", flat=True)) == ["Dedicated"]
