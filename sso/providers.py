"""allauth's OpenID Connect and SAML providers, with Portico's policy on top.

Both are installed through SOCIALACCOUNT_PROVIDERS[...]["provider_class"],
allauth's own extension point; the protocol work stays allauth's and
python3-saml's.

- OpenID Connect: every authorization request carries a fresh `nonce`, kept in
  the session; the ID token must echo one the session is waiting for, else the
  login fails before any account is looked up (allauth checks state, PKCE,
  issuer, audience and expiry, but sends no nonce).
- SAML: whatever an IdP's app settings say, responses are checked strictly,
  assertions must be signed, IdP-initiated logins are refused, and the SP has
  one identity (entity ID and, when configured, key pair) for every IdP.
"""

from __future__ import annotations

import copy
import secrets
from pathlib import Path
from typing import Any

from allauth.socialaccount.internal import jwtkit
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.openid_connect.provider import (
    OpenIDConnectProvider,
)
from allauth.socialaccount.providers.openid_connect.views import (
    OpenIDConnectOAuth2Adapter,
)
from allauth.socialaccount.providers.saml.provider import SAMLProvider
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from sso.claims import SAML_ATTRIBUTE_OIDS

NONCES_SESSION_KEY = "sso_oidc_nonces"
# Logins started in other tabs and never finished; the oldest are forgotten.
MAX_OUTSTANDING_NONCES = 8


def _asserted_profile(sociallogin: Any) -> dict[str, str]:
    """Name and e-mail as the provider gave them at this sign-in, before
    allauth swaps in the stored user of an existing account."""
    user = sociallogin.user
    return {
        "first_name": getattr(user, "first_name", "") or "",
        "last_name": getattr(user, "last_name", "") or "",
        "email": getattr(user, "email", "") or "",
    }


class NonceOpenIDConnectProvider(OpenIDConnectProvider):
    package = "allauth.socialaccount.providers.openid_connect"

    def redirect(
        self,
        request: HttpRequest,
        process: str,
        next_url: str | None = None,
        data: Any = None,
        **kwargs: Any,
    ) -> HttpResponse:
        nonce = secrets.token_urlsafe(32)
        outstanding = request.session.get(NONCES_SESSION_KEY, [])
        request.session[NONCES_SESSION_KEY] = [
            *outstanding[-(MAX_OUTSTANDING_NONCES - 1) :],
            nonce,
        ]
        auth_params = kwargs.pop("auth_params", None)
        if auth_params is None:
            auth_params = self.get_auth_params()
        auth_params = {**auth_params, "nonce": nonce}
        return super().redirect(
            request, process, next_url, data, auth_params=auth_params, **kwargs
        )

    def sociallogin_from_response(self, request: HttpRequest, response: Any) -> Any:
        id_token = response.get("id_token") if isinstance(response, dict) else None
        if id_token is not None:
            self._nonce_consume(request, id_token.get("nonce"))
        sociallogin = super().sociallogin_from_response(request, response)
        sociallogin.asserted_profile = _asserted_profile(sociallogin)
        return sociallogin

    def _nonce_consume(self, request: HttpRequest, nonce: Any) -> None:
        outstanding = request.session.get(NONCES_SESSION_KEY, [])
        matched = [
            n
            for n in outstanding
            if isinstance(nonce, str) and secrets.compare_digest(n, nonce)
        ]
        if not matched:
            # allauth's callback turns this into its authentication error page.
            raise OAuth2Error("The ID token's nonce does not match this sign-in")
        outstanding.remove(matched[0])
        request.session[NONCES_SESSION_KEY] = outstanding


def _read_pem(path: str) -> str:
    return Path(path).read_text(encoding="utf-8") if path else ""


def saml_policy_apply(
    app_settings: dict[str, Any], *, sp_entity_id: str | None
) -> dict[str, Any]:
    """An IdP's app settings with Portico's non-negotiable checks forced on."""
    merged = copy.deepcopy(app_settings)
    advanced = merged.setdefault("advanced", {})
    advanced.update(
        strict=True,
        want_assertion_signed=True,
        reject_idp_initiated_sso=True,
        reject_deprecated_algorithm=True,
    )
    cert, key = (
        _read_pem(settings.SAML_SP_CERT_FILE),
        _read_pem(settings.SAML_SP_KEY_FILE),
    )
    if cert and key:
        advanced.setdefault("x509cert", cert)
        advanced.setdefault("private_key", key)
    if sp_entity_id:
        merged.setdefault("sp", {})["entity_id"] = sp_entity_id
    mapping = merged.setdefault("attribute_mapping", {})
    for field, names in SAML_DEFAULT_MAPPING.items():
        mapping.setdefault(field, names)
    return merged


# Where a Shibboleth or SimpleSAMLphp IdP (SAML2 URI names) and ADFS/Entra
# (claim URIs) put what an account needs; an app's own mapping wins.
SAML_DEFAULT_MAPPING: dict[str, list[str]] = {
    "uid": [
        "urn:oasis:names:tc:SAML:attribute:subject-id",
        "urn:oasis:names:tc:SAML:attribute:pairwise-id",
        SAML_ATTRIBUTE_OIDS["eduPersonPrincipalName"],
    ],
    "email": [
        SAML_ATTRIBUTE_OIDS["mail"],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    ],
    "first_name": [
        SAML_ATTRIBUTE_OIDS["givenName"],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    ],
    "last_name": [
        SAML_ATTRIBUTE_OIDS["sn"],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
    ],
    "name": [SAML_ATTRIBUTE_OIDS["displayName"]],
}


class PolicySAMLProvider(SAMLProvider):
    package = "allauth.socialaccount.providers.saml"

    def __init__(self, request: HttpRequest, app: Any = None) -> None:
        if app is not None:
            # A copy: allauth may hand the same app object out again.
            app = copy.copy(app)
            app.settings = saml_policy_apply(
                app.settings or {}, sp_entity_id=self._sp_entity_id(app)
            )
        super().__init__(request, app=app)

    @staticmethod
    def _sp_entity_id(app: Any) -> str | None:
        """SITE_URL's metadata URL, so that the SP keeps one name however the
        portal is reached; without SITE_URL allauth derives it per request."""
        if not settings.SITE_URL:
            return None
        path = reverse("saml_metadata", kwargs={"organization_slug": app.client_id})
        return settings.SITE_URL.rstrip("/") + path

    def sociallogin_from_response(self, request: HttpRequest, response: Any) -> Any:
        sociallogin = super().sociallogin_from_response(request, response)
        sociallogin.asserted_profile = _asserted_profile(sociallogin)
        return sociallogin


class SignatureCheckingOIDCAdapter(OpenIDConnectOAuth2Adapter):
    """allauth skips the ID token's signature when it fetched the token from
    the provider itself, as the specification allows over TLS. Portico checks
    it anyway (against the provider's JWKS): one request per sign-in buys
    safety against a misconfigured proxy or a plain-HTTP provider."""

    def _decode_id_token(self, app: Any, id_token: str) -> dict[str, Any]:
        return jwtkit.verify_and_decode(
            credential=id_token,
            keys_url=self.openid_config["jwks_uri"],
            issuer=self.openid_config["issuer"],
            audience=app.client_id,
            lookup_kid=jwtkit.lookup_kid_jwk,
            verify_signature=True,
        )
