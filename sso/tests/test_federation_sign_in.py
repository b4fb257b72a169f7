"""Signing in through an IdP that came from a federation aggregate, end to end
and without a browser: a signed aggregate holding the real test IdP (pysaml2,
its own process) among generated ones goes through `importidps`; then the
federation's one SP metadata URL, the search, the sign-in, a response posted
into a session that chose another IdP of the federation, and an IdP dropped
from the aggregate."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.contrib.auth.models import Group
from django.core.management import call_command

from accounts.models import User
from sso.devidp.aggregate import aggregate_build, test_signing_pair
from sso.devidp.saml import RunningSamlIdP, saml_idp_running
from sso.federation_import import federation_provider_id
from sso.models import ClaimGroupRule, Institution
from sso.tests.oidcflow import PASSWORD, form_fields
from sso.tests.samlflow import SamlAnswer, acs_post, idp_login, sp_metadata_url

pytestmark = pytest.mark.django_db(transaction=True)

FEDERATION = "testfed"
GENERATED_IDPS = 50
IDP_NAME = "Federated Test University of Tartu"
SCOPE = "fedtest.example.edu"
FAILED = "Sign-in through your institution failed"


def _researcher(username: str) -> dict[str, object]:
    return {
        "password": PASSWORD,
        "attributes": {
            "mail": [f"{username}@{SCOPE}"],
            "givenName": [username.title()],
            "sn": ["Federated"],
            "displayName": [f"{username.title()} Federated"],
            "eduPersonPrincipalName": [f"{username}@{SCOPE}"],
            "eduPersonScopedAffiliation": [f"faculty@{SCOPE}"],
        },
    }


@dataclass
class Federation:
    portal_url: str
    idp: RunningSamlIdP
    provider_id: str  # the test IdP's, as importidps names it
    other_provider_id: str  # a generated IdP of the same federation
    files: Path
    signer: tuple[bytes, bytes]

    def import_idps(self, *, with_test_idp: bool = True) -> str:
        """Build a freshly signed aggregate and run importidps on it; its
        summary line."""
        key_pem, cert_pem = self.signer
        entity = re.sub(r"^\s*<\?xml[^>]*\?>", "", self.idp.metadata_xml())
        data = aggregate_build(
            idps=GENERATED_IDPS,
            signing_key_pem=key_pem,
            signing_cert_pem=cert_pem,
            extra_entities=[entity] if with_test_idp else [],
        )
        (self.files / "aggregate.xml").write_bytes(data)
        (self.files / "federation.crt").write_bytes(cert_pem)
        out = io.StringIO()
        call_command(
            "importidps",
            str(self.files / "aggregate.xml"),
            "--federation",
            FEDERATION,
            "--cert",
            str(self.files / "federation.crt"),
            stdout=out,
        )
        return out.getvalue().strip()

    def browser(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.portal_url, follow_redirects=False, timeout=15
        )

    def start(self, client: httpx.Client, provider_id: str) -> httpx.Response:
        """POST the login page's "Choose your institution" form."""
        login = client.get("/accounts/login/")
        assert login.status_code == 200, login.text[:500]
        return client.post(
            "/accounts/institutions/start/",
            data={
                "csrfmiddlewaretoken": form_fields(login.text)["csrfmiddlewaretoken"],
                "provider": provider_id,
                "process": "login",
            },
        )

    def answer_for(self, client: httpx.Client, username: str) -> SamlAnswer:
        """Start the test IdP's sign-in in `client` and sign in there; the
        response, not yet posted to Portico."""
        started = self.start(client, self.provider_id)
        assert started.status_code == 302, started.text[:500]
        assert started.headers["location"].startswith(self.idp.sso_url)
        return idp_login(started.headers["location"], username=username)


@pytest.fixture(scope="module")
def signer() -> tuple[bytes, bytes]:
    return test_signing_pair(common_name="Test Federation signer")


@pytest.fixture
def federation(
    portal_server: Any, tmp_path: Path, signer: tuple[bytes, bytes]
) -> Iterator[Federation]:
    # The IdP learns Portico's SP from the federation's one metadata URL,
    # fetched at its first AuthnRequest: after the import below.
    with saml_idp_running(
        name=IDP_NAME,
        users={"grace": _researcher("grace"), "heidi": _researcher("heidi")},
        sp_metadata=[sp_metadata_url(portal_server.url, FEDERATION)],
    ) as idp:
        found = Federation(
            portal_url=portal_server.url,
            idp=idp,
            provider_id=federation_provider_id(
                federation=FEDERATION, entity_id=idp.entity_id
            ),
            other_provider_id=federation_provider_id(
                federation=FEDERATION,
                entity_id="https://idp.uni3.example.org/idp/shibboleth",
            ),
            files=tmp_path,
            signer=signer,
        )
        summary = found.import_idps()
        assert summary.startswith(
            f"{FEDERATION}: {GENERATED_IDPS + 1} created, 0 updated, 0 unchanged, "
            "0 disabled"
        ), summary
        yield found


def _search(client: httpx.Client, query: str) -> list[dict[str, Any]]:
    response = client.get("/accounts/institutions/search/", params={"q": query})
    assert response.status_code == 200, response.text[:500]
    return response.json()["results"]


def test_the_federation_has_one_sp_metadata_url_and_acs(federation: Federation) -> None:
    assert SocialApp.objects.filter(client_id=FEDERATION).count() == 51
    app = SocialApp.objects.get(provider_id=federation.provider_id)
    assert app.settings["idp"]["sso_url"] == federation.idp.sso_url
    assert app.settings["verified_email"] == [SCOPE]
    with federation.browser() as client:
        metadata = client.get(f"/accounts/saml/{FEDERATION}/metadata/")
    assert metadata.status_code == 200, metadata.text[:500]
    assert 'WantAssertionsSigned="true"' in metadata.text
    consumers = re.findall(
        r'AssertionConsumerService[^>]*Location="([^"]*)"', metadata.text
    )
    assert consumers == [f"{federation.portal_url}/accounts/saml/{FEDERATION}/acs/"]
    # Whichever IdP describes the SP, it is the same SP: one entity ID.
    assert f'entityID="{sp_metadata_url(federation.portal_url, FEDERATION)}"' in (
        metadata.text
    )


def test_the_imported_idp_is_found_by_name_and_by_e_mail(
    federation: Federation,
) -> None:
    with federation.browser() as client:
        for query in [
            "federated test",
            "TARTU university",
            f"grace@{SCOPE}",
            f"grace@cs.{SCOPE}",
        ]:
            results = _search(client, query)
            assert results, query
            assert results[0]["id"] == federation.provider_id, (query, results)
            assert results[0]["name"] == IDP_NAME
            assert results[0]["domains"] == [SCOPE]
        generated = _search(client, "University 3 of Example")
        assert generated[0]["id"] == federation.other_provider_id


def test_a_researcher_signs_in_through_the_federation(federation: Federation) -> None:
    faculty = Group.objects.create(name="Federated faculty")
    ClaimGroupRule.objects.create(
        provider=f"federation:{FEDERATION}",
        claim="eduPersonScopedAffiliation",
        value=f"faculty@{SCOPE}",
        group=faculty,
    )
    with federation.browser() as client:
        answer = federation.answer_for(client, "grace")
        assert answer.acs_url == (
            f"{federation.portal_url}/accounts/saml/{FEDERATION}/acs/"
        )
        final = acs_post(client, answer)
        assert final.status_code == 302, final.text[:1000]
        assert client.get("/settings/account/").status_code == 200
    user = User.objects.get(email=f"grace@{SCOPE}")
    account = SocialAccount.objects.get(user=user)
    assert account.provider == federation.provider_id
    assert account.uid == f"grace@{SCOPE}"
    # The address is in the IdP's registered scope: verified.
    assert EmailAddress.objects.get(user=user, email=f"grace@{SCOPE}").verified
    assert list(user.groups.values_list("name", flat=True)) == ["Federated faculty"]


def test_a_response_posted_into_a_session_that_chose_another_idp_is_refused(
    federation: Federation,
) -> None:
    with federation.browser() as client:
        answer = federation.answer_for(client, "grace")
        # Before the response comes back, this browser picks a generated IdP
        # of the same federation (same ACS URL): the response must be checked
        # against that IdP's key and entity ID, and fail.
        other = federation.start(client, federation.other_provider_id)
        assert other.status_code == 302
        assert other.headers["location"].startswith("https://idp.uni3.example.org/")
        refused = acs_post(client, answer)
        assert FAILED in refused.text, (refused.status_code, refused.text[:500])
        assert client.get("/settings/account/").status_code == 302
    with federation.browser() as stranger:
        # A browser that only ever chose the other IdP.
        assert federation.start(stranger, federation.other_provider_id).status_code == (
            302
        )
        assert FAILED in acs_post(stranger, answer).text
    assert not SocialAccount.objects.exists()
    assert not User.objects.exists()


def test_an_idp_dropped_from_the_aggregate_can_no_longer_sign_in(
    federation: Federation,
) -> None:
    with federation.browser() as client:
        assert acs_post(client, federation.answer_for(client, "grace")).status_code == (
            302
        )
    account = SocialAccount.objects.get(provider=federation.provider_id)
    with federation.browser() as pending_browser:
        # heidi's sign-in is under way when the federation drops the IdP.
        pending = federation.answer_for(pending_browser, "heidi")
        summary = federation.import_idps(with_test_idp=False)
        assert summary.startswith(
            f"{FEDERATION}: 0 created, 0 updated, {GENERATED_IDPS} unchanged, "
            "1 disabled"
        ), summary
        refused = acs_post(pending_browser, pending)
        assert FAILED in refused.text, (refused.status_code, refused.text[:500])
    assert not User.objects.filter(email=f"heidi@{SCOPE}").exists()
    with federation.browser() as client:
        assert federation.start(client, federation.provider_id).status_code == 404
        assert not any(
            result["id"] == federation.provider_id
            for result in _search(client, "federated test")
        )
    # grace keeps her link (and so her history, rules and a way back).
    kept = SocialAccount.objects.get(pk=account.pk)
    assert (kept.provider, kept.user_id) == (federation.provider_id, account.user_id)
    institution = Institution.objects.get(provider_id=federation.provider_id)
    assert not institution.enabled
    assert not SocialApp.objects.filter(provider_id=federation.provider_id).exists()

    # Back in the aggregate: the same provider id, and grace signs in again.
    summary = federation.import_idps()
    assert summary.startswith(f"{FEDERATION}: 0 created, 1 updated,"), summary
    with federation.browser() as client:
        final = acs_post(client, federation.answer_for(client, "grace"))
        assert final.status_code == 302, final.text[:1000]
    assert SocialAccount.objects.get().user_id == account.user_id
