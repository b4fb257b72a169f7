"""Signing in through a real SAML IdP (pysaml2, its own process): signed
assertions, attributes to groups, and every tampering refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import Group

from accounts.models import User
from sso.models import ClaimGroupRule
from sso.tests.samlflow import (
    acs_post,
    idp_login,
    saml_app_register,
    saml_idp_for,
    saml_researcher,
    saml_sign_in,
    saml_sign_in_start,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def idp(portal_server: Any) -> Iterator[Any]:
    users = {
        "grace": saml_researcher(
            "grace", email="grace@uni.example", affiliations=["faculty@uni.example"]
        )
    }
    with saml_idp_for(portal_server.url, users) as running:
        saml_app_register(running)
        yield running


def test_a_researcher_signs_in_with_a_signed_assertion(
    portal_server: Any, idp: Any
) -> None:
    dedicated = Group.objects.create(name="Dedicated")
    ClaimGroupRule.objects.create(
        claim="eduPersonScopedAffiliation",
        match="glob",
        value="faculty@*",
        group=dedicated,
    )
    client, final, _ = saml_sign_in(portal_server.url, username="grace")
    assert final.status_code == 302, final.text[:1000]
    user = User.objects.get(email="grace@uni.example")
    assert (user.first_name, user.last_name) == ("Grace", "Scholar")
    assert SocialAccount.objects.get(user=user).uid == "grace@uni.example"
    assert list(user.groups.values_list("name", flat=True)) == ["Dedicated"]
    assert client.get("/settings/account/").status_code == 200


@pytest.mark.parametrize("mode", ["unsigned", "tampered", "wrong_audience", "expired"])
def test_a_bad_assertion_is_refused_and_links_nothing(
    portal_server: Any, idp: Any, mode: str
) -> None:
    idp.control("misbehave", {"mode": mode})
    client, final, _ = saml_sign_in(portal_server.url, username="grace")
    assert "Sign-in through your institution failed" in final.text, (
        mode,
        final.status_code,
    )
    assert not SocialAccount.objects.exists()
    assert not User.objects.exists()
    assert client.get("/settings/account/").status_code == 302  # not signed in


def test_a_replayed_assertion_is_refused(portal_server: Any, idp: Any) -> None:
    client, final, answer = saml_sign_in(portal_server.url, username="grace")
    assert final.status_code == 302
    # The same browser, signed out, posts the same response again...
    client.cookies.clear()
    again = acs_post(client, answer)
    assert "Sign-in through your institution failed" in again.text
    # ...and so does another browser that started a sign-in of its own.
    other, _authn = saml_sign_in_start(portal_server.url)
    replayed = acs_post(other, answer)
    assert "Sign-in through your institution failed" in replayed.text
    assert SocialAccount.objects.count() == 1
    assert other.get("/settings/account/").status_code == 302


def test_the_sp_metadata_is_served_at_a_stable_url(
    portal_server: Any, idp: Any
) -> None:
    import httpx

    metadata = httpx.get(f"{portal_server.url}/accounts/saml/testuni/metadata/")
    assert metadata.status_code == 200
    assert 'WantAssertionsSigned="true"' in metadata.text
    assert "/accounts/saml/testuni/acs/" in metadata.text


def test_the_idp_login_page_is_only_a_step(portal_server: Any, idp: Any) -> None:
    _client, authn = saml_sign_in_start(portal_server.url)
    answer = idp_login(authn, username="grace")
    assert answer.acs_url.endswith("/accounts/saml/testuni/acs/")
