"""University sign-in in a real browser (Debian's chromium through Playwright)
against the real test OpenID Connect provider and SAML IdP (their own
processes): a new researcher to groups to an API key to `/v1/models`, a group
taken away at the provider that reaches `/v1/models` within 2 seconds of the
next sign-in, "Choose your institution" with the last choice remembered, and
what LOCAL_LOGIN leaves of the password form."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.contrib.auth.models import Group

from accounts.models import User
from sso.devidp.saml import RunningSamlIdP, saml_idp_running
from sso.models import ClaimGroupRule, Institution, institution_search_text
from sso.tests.oidcflow import (
    PASSWORD,
    oidc_app_register,
    provider_for,
    researcher,
)
from sso.tests.samlflow import (
    saml_app_register,
    saml_idp_for,
    saml_researcher,
    sp_metadata_url,
)
from tests.factories import PASSWORD as LOCAL_PASSWORD
from tests.factories import user_make
from tests.fakebackend import FakeBackend
from tests.fixtures_browser import ThreadedUvicorn
from tests.fixtures_proxy import model_register

pytestmark = pytest.mark.browser

DEDICATED_MODEL = "fake-embed"
OPEN_MODEL = "fake-chat"
# A second sign-in must reach /v1/models within this many seconds.
GROUP_CHANGE_REACHES_KEYS_S = 2.0
FEDERATION = "testfed"


# -- set-up -------------------------------------------------------------------


@pytest.fixture
def dedicated() -> Group:
    """The group faculty get, from an OIDC claim or a SAML attribute."""
    group = Group.objects.create(name="Dedicated")
    ClaimGroupRule.objects.create(claim="groups", value="faculty", group=group)
    ClaimGroupRule.objects.create(
        claim="eduPersonScopedAffiliation",
        match="glob",
        value="faculty@*",
        group=group,
    )
    return group


@pytest.fixture
def dedicated_model(
    portal_server: ThreadedUvicorn,
    fake_backend: FakeBackend,
    dedicated: Group,
    settings: Any,
) -> str:
    """The fake backend's models behind the portal, one of them for the
    Dedicated group only (the rest open to everyone)."""
    from apiproxy.catalog import catalog
    from apiproxy.refusals import refusal_budget
    from apiproxy.routing import picker
    from catalog.models import Model

    settings.CATALOG_REFRESH_SECONDS = 0.0
    picker.refused_until.clear()
    refusal_budget.__init__()
    model_register(fake_backend)
    model = Model.objects.get(public_id=DEDICATED_MODEL)
    model.everyone = False
    model.save(update_fields=["everyone"])
    model.access_groups.add(dedicated)
    catalog.invalidate()
    return DEDICATED_MODEL


def federated_idp_register(
    idp: RunningSamlIdP, *, provider_id: str, name: str, domains: str
) -> Institution:
    """One IdP as importidps registers it from a federation's aggregate: a
    SAML app on the federation's shared slug, not listed as a button, and an
    Institution row that "Choose your institution" finds."""
    app = saml_app_register(
        idp,
        organization=FEDERATION,
        provider_id=provider_id,
        name=name,
        verified_email=domains.split(),
    )
    app.settings = {**app.settings, "federation": FEDERATION}
    app.save(update_fields=["settings"])
    return Institution.objects.create(
        provider_id=provider_id,
        protocol=Institution.PROTOCOL_SAML,
        name=name,
        domains=domains,
        search_text=institution_search_text(name=name, domains=domains),
        entity_id=idp.entity_id,
        federation=FEDERATION,
    )


# -- the browser's steps ------------------------------------------------------


def in_portico(base_url: str) -> Callable[[str], bool]:
    """A URL predicate: back in the portal, past the sign-in pages."""
    return lambda url: url.startswith(base_url + "/") and "/accounts/" not in url


def idp_sign_in(page: Any, idp_url: str, username: str) -> None:
    """At the provider's own login page (OIDC and SAML share the ids)."""
    page.wait_for_url(idp_url + "/**")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")


def oidc_sign_in(
    page: Any, portal_url: str, *, button: str, idp_url: str, username: str
) -> float:
    """From the login page through the provider to the portal's answer to the
    sign-in's last step (the callback), the moment the sign-in is recorded;
    returns that moment (time.monotonic()), the browser still on its way to
    the page the portal sent it to."""
    page.goto(portal_url + "/accounts/login/")
    page.click(button)
    with page.expect_response(
        lambda r: (
            r.url.startswith(portal_url + "/accounts/oidc/")
            and "/login/callback/" in r.url
        )
    ) as finished:
        idp_sign_in(page, idp_url, username)
    assert finished.value.status == 302, finished.value.url
    return time.monotonic()


def log_out(page: Any) -> None:
    page.locator("nav.topnav").get_by_role("button", name="Log out").click()
    page.wait_for_url("**/accounts/login/")


def key_create(page: Any) -> str:
    """On Settings > Account: a new key, as the page shows it once."""
    page.fill("input[name=name]", "notebook")
    page.get_by_role("button", name="Create key").click()
    return str(page.get_by_test_id("new-key").inner_text()).strip()


def sdk_client(portal_url: str, key: str) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=portal_url + "/v1", api_key=key, max_retries=0, timeout=10)


def model_ids(client: Any) -> set[str]:
    return {model.id for model in client.models.list()}


def groups_of(email: str) -> list[str]:
    user = User.objects.get(email=email)
    return sorted(user.groups.values_list("name", flat=True))


# -- 1. OpenID Connect: new user, groups, key, SDK; the claim goes away ----------


def test_a_new_researcher_gets_the_dedicated_model_until_the_claim_goes(
    portal_server: ThreadedUvicorn, page: Any, dedicated_model: str
) -> None:
    url = portal_server.url
    users = {
        "ada": researcher("ada", email="ada@uni.example", groups=["faculty", "staff"])
    }
    with provider_for(url, users) as provider:
        oidc_app_register(provider)
        oidc_sign_in(
            page, url, button="#sso-testuni", idp_url=provider.issuer, username="ada"
        )
        page.wait_for_url(in_portico(url))
        assert groups_of("ada@uni.example") == ["Dedicated"]
        assert not User.objects.get(email="ada@uni.example").has_usable_password()

        page.goto(url + "/settings/account/")
        profile = page.locator("#sso-profile").inner_text()
        assert "Test University" in profile and "Dedicated" in profile
        # A fresh sign-in counts as recent: no password prompt for the key.
        key = key_create(page)
        assert key.startswith("sk-")
        sdk = sdk_client(url, key)
        assert {dedicated_model, OPEN_MODEL} <= model_ids(sdk)

        provider.set_user(
            "ada",
            researcher("ada", email="ada@uni.example", groups=["staff"])["claims"],
        )
        log_out(page)
        signed_in = oidc_sign_in(
            page, url, button="#sso-testuni", idp_url=provider.issuer, username="ada"
        )
        deadline = signed_in + GROUP_CHANGE_REACHES_KEYS_S
        polls = 1
        while dedicated_model in (listed := model_ids(sdk)):
            assert time.monotonic() < deadline, (
                f"{dedicated_model} still listed {GROUP_CHANGE_REACHES_KEYS_S} s "
                "after the sign-in that removed the claim"
            )
            polls += 1
            time.sleep(0.02)
        delay = time.monotonic() - signed_in
        print(
            f"\ngroup removal reached /v1/models {delay * 1000:.0f} ms after the "
            f"sign-in ({polls} listing(s))"
        )
        assert OPEN_MODEL in listed
        page.wait_for_url(in_portico(url))
        assert groups_of("ada@uni.example") == []
        assert User.objects.filter(email="ada@uni.example").count() == 1


# -- 2. SAML: new user to groups -------------------------------------------------


def test_a_new_researcher_signs_in_through_the_saml_idp(
    portal_server: ThreadedUvicorn, page: Any, dedicated: Group
) -> None:
    url = portal_server.url
    users = {
        "grace": saml_researcher(
            "grace", email="grace@uni.example", affiliations=["faculty@uni.example"]
        )
    }
    with saml_idp_for(url, users) as idp:
        saml_app_register(idp)
        page.goto(url + "/accounts/login/")
        # One provider: its button, no search.
        assert page.locator("#institution-search").count() == 0
        page.click("#sso-testuni-saml")
        # The IdP answers with a form that posts itself to the ACS.
        with page.expect_request(
            lambda r: (
                r.method == "POST" and r.url.endswith("/accounts/saml/testuni/acs/")
            )
        ):
            idp_sign_in(page, idp.base_url, "grace")
        page.wait_for_url(in_portico(url))
        user = User.objects.get(email="grace@uni.example")
        assert (user.first_name, user.last_name) == ("Grace", "Scholar")
        assert SocialAccount.objects.get(user=user).provider == "testuni-saml"
        assert groups_of("grace@uni.example") == ["Dedicated"]
        page.goto(url + "/settings/account/")
        profile = page.locator("#sso-profile").inner_text()
        assert "Test University SAML" in profile and "Dedicated" in profile


# -- 3. Choose your institution, and the last choice ---------------------------


@pytest.fixture
def two_providers(portal_server: ThreadedUvicorn) -> Iterator[tuple[Any, Any]]:
    """Test University (OpenID Connect, a button; e-mail domain uni.example)
    and the University of Tartu, a SAML IdP of an imported federation (found
    only by searching; ut.ee)."""
    url = portal_server.url
    oidc_users = {"ada": researcher("ada", email="ada@uni.example", groups=[])}
    saml_users = {
        "grace": saml_researcher(
            "grace", email="grace@ut.ee", affiliations=["member@ut.ee"]
        )
    }
    with (
        provider_for(url, oidc_users) as provider,
        saml_idp_running(
            name="University of Tartu",
            users=saml_users,
            sp_metadata=[sp_metadata_url(url, FEDERATION)],
        ) as idp,
    ):
        oidc_app_register(provider)
        Institution.objects.create(
            provider_id="testuni",
            protocol=Institution.PROTOCOL_OIDC,
            name="Test University",
            domains="uni.example",
            search_text=institution_search_text(
                name="Test University", domains="uni.example"
            ),
        )
        federated_idp_register(
            idp, provider_id="ut-saml", name="University of Tartu", domains="ut.ee"
        )
        yield provider, idp


def test_choose_your_institution_by_name_or_address_and_continue_next_time(
    portal_server: ThreadedUvicorn, page: Any, two_providers: tuple[Any, Any]
) -> None:
    from playwright.sync_api import expect

    provider, idp = two_providers
    url = portal_server.url
    login = url + "/accounts/login/"
    search = page.locator("#institution-search")
    results = page.locator("#institution-results")

    page.goto(login)
    expect(page.locator("label[for=institution-search]")).to_have_text(
        "Choose your institution"
    )
    expect(page.locator("#sso-testuni")).to_be_visible()
    assert page.locator("#sso-ut-saml").count() == 0  # federated: search only
    expect(page.locator("#institution-last")).to_be_hidden()

    # Part of a name finds the federation's IdP; its button starts that sign-in.
    search.press_sequentially("tart")
    found = results.get_by_role("button", name="Sign in with University of Tartu")
    expect(found).to_be_visible()
    expect(results.locator("li")).to_have_count(1)
    found.click()
    idp_sign_in(page, idp.base_url, "grace")
    page.wait_for_url(in_portico(url))
    grace = User.objects.get(email="grace@ut.ee")
    assert SocialAccount.objects.get(user=grace).provider == "ut-saml"

    # Next visit, same browser: "Continue with" the last choice.
    log_out(page)
    last = page.locator("#institution-last-button")
    expect(last).to_have_text("Continue with University of Tartu")
    last.click()
    idp_sign_in(page, idp.base_url, "grace")
    page.wait_for_url(in_portico(url))
    assert User.objects.count() == 1

    # An e-mail address finds the institution by its domain.
    log_out(page)
    search.fill("someone@uni.example")
    found = results.get_by_role("button", name="Sign in with Test University")
    expect(found).to_be_visible()
    expect(results.locator("li")).to_have_count(1)
    found.click()
    idp_sign_in(page, provider.issuer, "ada")
    page.wait_for_url(in_portico(url))
    ada = User.objects.get(email="ada@uni.example")
    assert SocialAccount.objects.get(user=ada).provider == "testuni"

    # A last choice that is a button on the page already is not repeated.
    log_out(page)
    expect(page.locator("#sso-testuni")).to_be_visible()
    assert page.locator("#institution-last-button").count() == 0
    stored = page.evaluate("localStorage.getItem('portico.sso.last')")
    assert '"testuni"' in stored


# -- 4. LOCAL_LOGIN ---------------------------------------------------------------


def oidc_app_listed() -> SocialApp:
    """A configured provider (its server is never contacted by these pages)."""
    return SocialApp.objects.create(
        provider="openid_connect",
        provider_id="testuni",
        name="Test University",
        client_id="portico",
        secret="unused",
        settings={"server_url": "http://127.0.0.1:9"},
    )


@pytest.mark.usefixtures("fast_password_hashing")
def test_staff_only_hides_the_password_form_and_refuses_researchers(
    portal_server: ThreadedUvicorn, page: Any, settings: Any
) -> None:
    from playwright.sync_api import expect

    settings.LOCAL_LOGIN = "staff-only"
    oidc_app_listed()
    user_make(username="alice")
    user_make(username="op", is_staff=True)
    url = portal_server.url
    login = url + "/accounts/login/"

    page.goto(login)
    expect(page.locator("#sso-testuni")).to_be_visible()
    staff = page.locator("details#staff-login")
    assert staff.evaluate("details => details.open") is False
    assert page.locator("input[name=password]").count() == 1
    expect(staff.locator("input[name=password]")).to_be_hidden()
    assert page.get_by_role("link", name="Sign up").count() == 0

    staff.locator("summary").click()
    staff.locator("input[name=login]").fill("alice")
    staff.locator("input[name=password]").fill(LOCAL_PASSWORD)
    staff.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#local-login-refused")).to_contain_text("staff only")
    page.goto(url + "/settings/account/")
    page.wait_for_url("**/accounts/login/**")  # alice is not signed in

    page.goto(login)
    staff.locator("summary").click()
    staff.locator("input[name=login]").fill("op")
    staff.locator("input[name=password]").fill(LOCAL_PASSWORD)
    staff.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(in_portico(url))
    expect(page.locator("nav.topnav")).to_contain_text("Log out")


@pytest.mark.usefixtures("fast_password_hashing")
def test_local_login_off_leaves_no_password_form(
    portal_server: ThreadedUvicorn, page: Any, settings: Any
) -> None:
    settings.LOCAL_LOGIN = "off"
    oidc_app_listed()
    user_make(username="op", is_staff=True, is_superuser=True)
    url = portal_server.url

    page.goto(url + "/accounts/login/")
    page.locator("#sso-testuni").wait_for()
    assert page.locator("input[name=password]").count() == 0
    assert page.locator("#staff-login").count() == 0
    assert page.locator("#passkey_login").count() == 0

    # Nor does a password posted by hand sign anyone in, staff included.
    token = page.locator("form.sso-start input[name=csrfmiddlewaretoken]")
    answer = page.request.post(
        url + "/accounts/login/",
        form={
            "csrfmiddlewaretoken": str(token.first.get_attribute("value")),
            "login": "op",
            "password": LOCAL_PASSWORD,
        },
        max_redirects=0,
    )
    assert answer.status == 403
    assert 'id="local-login-refused"' in answer.text()
    page.goto(url + "/settings/account/")
    page.wait_for_url("**/accounts/login/**")
