"""Signing in through a real OpenID Connect provider (sso.devidp.oidc, its own
process): new accounts, groups from claims, linking, and the refusals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import Group

from accounts.models import User
from sso.models import ClaimGroupGrant, ClaimGroupRule
from sso.tests.oidcflow import (
    oidc_app_register,
    oidc_sign_in,
    provider_for,
    researcher,
)
from tests.factories import user_make

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def idp(portal_server: Any) -> Iterator[Any]:
    users = {
        "ada": researcher("ada", email="ada@uni.example", groups=["faculty", "staff"]),
        "eve": researcher("eve", email="alice@example.org", groups=[], verified=False),
        "alice": researcher("alice", email="alice@example.org", groups=["student"]),
    }
    with provider_for(portal_server.url, users) as provider:
        oidc_app_register(provider)
        yield provider


@pytest.fixture
def dedicated_rule() -> ClaimGroupRule:
    dedicated = Group.objects.create(name="Dedicated")
    return ClaimGroupRule.objects.create(
        claim="groups", value="faculty", group=dedicated
    )


def test_a_new_researcher_signs_in_and_gets_the_groups_the_rules_give(
    portal_server: Any, idp: Any, dedicated_rule: ClaimGroupRule
) -> None:
    signed_in = oidc_sign_in(portal_server.url, username="ada")
    assert signed_in.final.status_code == 302, signed_in.final.text[:800]
    user = User.objects.get(email="ada@uni.example")
    assert (user.first_name, user.last_name) == ("Ada", "Researcher")
    assert user.is_active
    assert EmailAddress.objects.get(user=user).verified
    assert list(user.groups.values_list("name", flat=True)) == ["Dedicated"]
    account = SocialAccount.objects.get(user=user)
    assert account.provider == "testuni"

    home = signed_in.client.get("/settings/account/")
    assert home.status_code == 200
    assert "Test University" in home.text and "Dedicated" in home.text


def test_a_claim_no_longer_asserted_removes_the_group_but_not_a_manual_one(
    portal_server: Any, idp: Any, dedicated_rule: ClaimGroupRule
) -> None:
    manual = Group.objects.create(name="Manual")
    staff_rule = ClaimGroupRule.objects.create(
        claim="groups", value="staff", group=manual
    )
    oidc_sign_in(portal_server.url, username="ada")
    user = User.objects.get(email="ada@uni.example")
    user.groups.add(manual)  # by hand, on top of nothing: rule grant is separate
    assert ClaimGroupGrant.objects.filter(user=user).count() == 2

    idp.set_user("ada", researcher("ada", email="ada@uni.example", groups=[])["claims"])
    oidc_sign_in(portal_server.url, username="ada")
    assert set(user.groups.values_list("name", flat=True)) == set()
    assert staff_rule.pk  # rule kept; its grant went, and so did the membership


def test_a_membership_made_by_hand_before_the_rule_matched_is_never_removed(
    portal_server: Any, idp: Any, dedicated_rule: ClaimGroupRule
) -> None:
    ada = user_make(username="ada", email="ada@uni.example")
    ada.groups.add(dedicated_rule.group)
    oidc_sign_in(portal_server.url, username="ada")
    assert ClaimGroupGrant.objects.get(user=ada).preexisting
    idp.set_user("ada", researcher("ada", email="ada@uni.example", groups=[])["claims"])
    oidc_sign_in(portal_server.url, username="ada")
    assert list(ada.groups.values_list("name", flat=True)) == ["Dedicated"]
    assert not ClaimGroupGrant.objects.filter(user=ada).exists()


def test_it_links_an_existing_account_by_an_address_both_sides_verified(
    portal_server: Any, idp: Any
) -> None:
    alice = user_make(username="alice")  # alice@example.org, verified
    signed_in = oidc_sign_in(portal_server.url, username="alice")
    assert signed_in.final.status_code == 302
    assert SocialAccount.objects.get(provider="testuni").user == alice
    assert User.objects.count() == 1


def test_an_unverified_address_equal_to_an_existing_account_links_nothing(
    portal_server: Any, idp: Any
) -> None:
    alice = user_make(username="alice")
    signed_in = oidc_sign_in(portal_server.url, username="eve")
    assert signed_in.final.status_code == 409
    assert 'id="address-in-use"' in signed_in.final.text
    assert not SocialAccount.objects.exists()
    assert User.objects.get() == alice
    assert signed_in.client.get("/settings/account/").status_code == 302
    alice.refresh_from_db()
    assert alice.has_usable_password()


def test_an_address_the_account_never_verified_links_nothing(
    portal_server: Any, idp: Any
) -> None:
    alice = user_make(username="alice")
    EmailAddress.objects.filter(user=alice).update(verified=False)
    oidc_sign_in(portal_server.url, username="alice")
    assert not SocialAccount.objects.filter(user=alice).exists()


@pytest.mark.parametrize(
    "mode", ["expired", "wrong_nonce", "wrong_audience", "bad_signature", "wrong_state"]
)
def test_a_bad_id_token_or_state_is_refused_and_links_nothing(
    portal_server: Any, idp: Any, mode: str
) -> None:
    alice = user_make(username="alice")
    idp.misbehave(mode)
    signed_in = oidc_sign_in(portal_server.url, username="alice")
    assert "Sign-in through your institution failed" in signed_in.final.text, (
        mode,
        signed_in.final.status_code,
        signed_in.final.headers.get("location"),
    )
    assert not SocialAccount.objects.exists()
    assert User.objects.get() == alice
    assert signed_in.client.get("/settings/account/").status_code == 302


def test_a_callback_replayed_in_another_browser_is_refused(
    portal_server: Any, idp: Any
) -> None:
    signed_in = oidc_sign_in(portal_server.url, username="ada")
    assert signed_in.final.status_code == 302
    import httpx

    with httpx.Client(follow_redirects=False) as other:
        replay = other.get(signed_in.callback)
    assert "Sign-in through your institution failed" in replay.text
    assert SocialAccount.objects.count() == 1


def test_name_and_address_follow_the_provider_at_each_sign_in(
    portal_server: Any, idp: Any
) -> None:
    oidc_sign_in(portal_server.url, username="ada")
    ada = User.objects.get(email="ada@uni.example")
    claims = researcher("ada", email="ada.lovelace@uni.example", groups=[])["claims"]
    claims.update(given_name="Augusta Ada", family_name="King")  # type: ignore[union-attr]
    idp.set_user("ada", claims)
    oidc_sign_in(portal_server.url, username="ada")
    ada.refresh_from_db()
    assert (ada.first_name, ada.last_name) == ("Augusta Ada", "King")
    assert ada.email == "ada.lovelace@uni.example"
    assert EmailAddress.objects.get(user=ada, primary=True).email == ada.email


def test_an_address_another_account_holds_is_never_taken_over(
    portal_server: Any, idp: Any
) -> None:
    oidc_sign_in(portal_server.url, username="ada")
    ada = User.objects.get(email="ada@uni.example")
    user_make(username="carol", email="carol@uni.example")
    claims = researcher("ada", email="carol@uni.example", groups=[])["claims"]
    idp.set_user("ada", claims)
    oidc_sign_in(portal_server.url, username="ada")
    ada.refresh_from_db()
    assert ada.email == "ada@uni.example"
    assert EmailAddress.objects.get(email="carol@uni.example").user.username == "carol"
