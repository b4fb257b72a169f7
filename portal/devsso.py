"""`SSO_DEMO=1 make run`: a test OpenID Connect provider beside the demo
backend, so that "Sign in with Demo University" can be clicked through on one
machine. The provider (sso.devidp.oidc, a development package) runs as its own
process on loopback, is registered as an ordinary provider, and stops with the
portal. Its one user's password is made fresh and printed, like the admin's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth.models import Group

from sso.models import ClaimGroupRule
from sso.services import oidc_app_upsert

DEMO_PROVIDER_ID = "demo-university"
DEMO_NAME = "Demo University"
DEMO_DOMAIN = "demo-university.example"
DEMO_USERNAME = "researcher"
DEMO_GROUP = "Demo University researchers"


@dataclass
class DemoSSO:
    provider: object  # sso.devidp.oidc.RunningOIDCProvider
    password: str

    def stop(self) -> None:
        self.provider.stop()  # type: ignore[attr-defined]


def _callbacks(port: int) -> list[str]:
    path = f"/accounts/oidc/{DEMO_PROVIDER_ID}/login/callback/"
    return [f"http://{host}:{port}{path}" for host in ("127.0.0.1", "localhost")]


def demo_sso_start(*, port: int) -> DemoSSO:
    """Start the demo provider and register it; ImportError when the
    development packages (authlib) are not installed."""
    from sso.devidp.oidc import OIDCClient, oidc_provider_start

    password = secrets.token_urlsafe(9)
    secret = secrets.token_urlsafe(24)
    users = {
        DEMO_USERNAME: {
            "password": password,
            "claims": {
                "email": f"{DEMO_USERNAME}@{DEMO_DOMAIN}",
                "email_verified": True,
                "name": "Demo Researcher",
                "given_name": "Demo",
                "family_name": "Researcher",
                "groups": ["researchers"],
            },
        }
    }
    client = OIDCClient(
        client_id="portico-demo", client_secret=secret, redirect_uris=_callbacks(port)
    )
    provider = oidc_provider_start(
        name=DEMO_NAME, clients=[client], users=users, control=False
    )
    oidc_app_upsert(
        provider_id=DEMO_PROVIDER_ID,
        name=DEMO_NAME,
        client_id=client.client_id,
        secret=secret,
        server_url=provider.issuer,
        domains=(DEMO_DOMAIN,),
    )
    group, _ = Group.objects.get_or_create(name=DEMO_GROUP)
    ClaimGroupRule.objects.get_or_create(
        provider=DEMO_PROVIDER_ID,
        claim="groups",
        value="researchers",
        defaults={"group": group, "name": "Demo University researchers"},
    )
    return DemoSSO(provider=provider, password=password)


def demo_sso_describe(*, demo: DemoSSO, url: str) -> str:
    return (
        f"SSO demo: {DEMO_NAME} (a test OpenID Connect provider at"
        f" {demo.provider.issuer}). On {url}accounts/login/ click"  # type: ignore[attr-defined]
        f" 'Sign in with {DEMO_NAME}' and sign in there as\n"
        f"    username: {DEMO_USERNAME}\n"
        f"    password: {demo.password}\n"
        f"(group rule: claim groups=researchers -> group {DEMO_GROUP!r})"
    )
