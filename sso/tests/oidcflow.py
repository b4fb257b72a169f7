"""Signing in through the test OpenID Connect provider, without a browser: the
same requests a browser makes (start form, IdP form, callback), over real
sockets, so that hostile cases can bend one step at a time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from urllib.parse import urljoin

import httpx
from allauth.socialaccount.models import SocialApp

from sso.devidp.oidc import OIDCClient, RunningOIDCProvider, oidc_provider_running

PROVIDER_ID = "testuni"
CLIENT_ID = "portico"
CLIENT_SECRET = "portico-test-secret"
PASSWORD = "correct horse"


def callback_url(portal_url: str, provider_id: str = PROVIDER_ID) -> str:
    return f"{portal_url}/accounts/oidc/{provider_id}/login/callback/"


def researcher(
    username: str, *, email: str, groups: list[str], verified: bool = True
) -> dict[str, object]:
    return {
        "password": PASSWORD,
        "claims": {
            "sub": f"sub-{username}",
            "email": email,
            "email_verified": verified,
            "name": f"{username.title()} Researcher",
            "given_name": username.title(),
            "family_name": "Researcher",
            "groups": groups,
        },
    }


def oidc_app_register(
    provider: RunningOIDCProvider,
    *,
    provider_id: str = PROVIDER_ID,
    name: str = "Test University",
) -> SocialApp:
    return SocialApp.objects.create(
        provider="openid_connect",
        provider_id=provider_id,
        name=name,
        client_id=CLIENT_ID,
        secret=CLIENT_SECRET,
        settings={"server_url": provider.issuer},
    )


def provider_for(portal_url: str, users: dict[str, dict[str, object]]):  # type: ignore[no-untyped-def]
    client = OIDCClient(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[callback_url(portal_url)],
    )
    return oidc_provider_running(name="Test University", clients=[client], users=users)


def form_fields(html: str) -> dict[str, str]:
    fields = {}
    for tag in re.findall(r"<input\b[^>]*>", html):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[unescape(name.group(1))] = unescape(value.group(1)) if value else ""
    return fields


@dataclass
class SignIn:
    client: httpx.Client
    final: httpx.Response  # the portal's answer to the callback
    callback: str  # the callback URL the provider sent the browser to


def sign_in_start(
    portal_url: str, *, provider_id: str = PROVIDER_ID
) -> tuple[httpx.Client, str]:
    """A fresh browser-like client, and the provider URL the portal sent it to."""
    client = httpx.Client(base_url=portal_url, follow_redirects=False, timeout=15)
    login = client.get("/accounts/login/")
    token = form_fields(login.text)["csrfmiddlewaretoken"]
    started = client.post(
        "/accounts/institutions/start/",
        data={
            "csrfmiddlewaretoken": token,
            "provider": provider_id,
            "process": "login",
        },
    )
    assert started.status_code == 302, started.text[:500]
    return client, started.headers["location"]


def provider_login(
    client: httpx.Client, authorize_url: str, *, username: str, password: str = PASSWORD
) -> str:
    """Sign in at the provider; the callback URL it redirects to."""
    with httpx.Client(follow_redirects=False, timeout=15) as idp:
        form = idp.get(authorize_url)
        assert form.status_code == 200, form.text[:500]
        action = re.search(r'<form method="post" action="([^"]*)"', form.text)
        assert action
        answer = idp.post(
            urljoin(authorize_url, unescape(action.group(1))),
            data={"username": username, "password": password},
        )
        assert answer.status_code in (302, 303), answer.text[:500]
        return answer.headers["location"]


def oidc_sign_in(
    portal_url: str, *, username: str, provider_id: str = PROVIDER_ID
) -> SignIn:
    client, authorize = sign_in_start(portal_url, provider_id=provider_id)
    callback = provider_login(client, authorize, username=username)
    final = client.get(callback)
    return SignIn(client=client, final=final, callback=callback)
