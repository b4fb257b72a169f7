"""Signing in through the test SAML IdP (sso.devidp.saml), without a browser:
start form, IdP login, the auto-posted response to the ACS, allauth's finish
step. Hostile cases replace or replay the response between those steps."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from urllib.parse import urljoin

import httpx
from allauth.socialaccount.models import SocialApp

from sso.devidp.saml import RunningSamlIdP, saml_idp_running
from sso.tests.oidcflow import PASSWORD, form_fields, sign_in_start

ORGANIZATION = "testuni"
PROVIDER_ID = "testuni-saml"

OID = {
    "mail": "urn:oid:0.9.2342.19200300.100.1.3",
    "eduPersonScopedAffiliation": "urn:oid:1.3.6.1.4.1.5923.1.1.1.9",
}


def saml_researcher(
    username: str, *, email: str, affiliations: list[str]
) -> dict[str, object]:
    return {
        "password": PASSWORD,
        "attributes": {
            "mail": [email],
            "givenName": [username.title()],
            "sn": ["Scholar"],
            "displayName": [f"{username.title()} Scholar"],
            "eduPersonPrincipalName": [f"{username}@uni.example"],
            "eduPersonScopedAffiliation": affiliations,
        },
    }


def sp_metadata_url(portal_url: str, organization: str = ORGANIZATION) -> str:
    return f"{portal_url}/accounts/saml/{organization}/metadata/"


def saml_app_register(
    idp: RunningSamlIdP,
    *,
    organization: str = ORGANIZATION,
    provider_id: str = PROVIDER_ID,
    name: str = "Test University SAML",
    verified_email: bool | list[str] = True,
) -> SocialApp:
    cert = "".join(
        line for line in idp.certificate_pem.splitlines() if "CERTIFICATE" not in line
    )
    return SocialApp.objects.create(
        provider="saml",
        provider_id=provider_id,
        name=name,
        client_id=organization,
        settings={
            "idp": {
                "entity_id": idp.entity_id,
                "sso_url": idp.sso_url,
                "x509cert": cert,
            },
            "verified_email": verified_email,
        },
    )


@contextmanager
def saml_idp_for(
    portal_url: str, users: dict[str, dict[str, object]]
) -> Iterator[RunningSamlIdP]:
    with saml_idp_running(
        name="Test University SAML",
        users=users,
        sp_metadata=[sp_metadata_url(portal_url)],
    ) as idp:
        yield idp


@dataclass
class SamlAnswer:
    acs_url: str
    fields: dict[str, str]


def idp_login(authn_url: str, *, username: str, password: str = PASSWORD) -> SamlAnswer:
    """Sign in at the IdP; the auto-submitting form it answers with."""
    with httpx.Client(follow_redirects=False, timeout=15) as idp:
        page = idp.get(authn_url)
        assert page.status_code == 200, page.text[:500]
        action = re.search(r'<form[^>]*method="post"[^>]*action="([^"]*)"', page.text)
        assert action, page.text[:500]
        fields = form_fields(page.text)
        fields.update(username=username, password=password)
        answer = idp.post(urljoin(authn_url, unescape(action.group(1))), data=fields)
        assert answer.status_code == 200, answer.text[:500]
        acs = re.search(
            r'<form id="saml-post" method="post" action="([^"]*)"', answer.text
        )
        assert acs, answer.text[:800]
        return SamlAnswer(
            acs_url=unescape(acs.group(1)), fields=form_fields(answer.text)
        )


def acs_post(client: httpx.Client, answer: SamlAnswer) -> httpx.Response:
    """Post the response to the ACS and follow allauth's finish redirect."""
    posted = client.post(answer.acs_url, data=answer.fields)
    assert posted.status_code == 302, posted.text[:500]
    return client.get(posted.headers["location"])


def saml_sign_in_start(
    portal_url: str, *, provider_id: str = PROVIDER_ID
) -> tuple[httpx.Client, str]:
    return sign_in_start(portal_url, provider_id=provider_id)


def saml_sign_in(
    portal_url: str, *, username: str, provider_id: str = PROVIDER_ID
) -> tuple[httpx.Client, httpx.Response, SamlAnswer]:
    client, authn = saml_sign_in_start(portal_url, provider_id=provider_id)
    answer = idp_login(authn, username=username)
    return client, acs_post(client, answer), answer
