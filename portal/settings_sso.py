"""Sign-in through institutions: allauth's socialaccount with OpenID Connect
and SAML 2.0 providers (docs/sso.md), the local login's reach, and how long an
SSO user's API keys keep working without a fresh sign-in."""

from __future__ import annotations

from portal.env import env_bool, env_choice, env_int, env_str
from portal.env_sso import env_oidc_providers

# Local (username and password) login: on, staff-only (researchers sign in
# through their institution; staff keep a break-glass login) or off.
LOCAL_LOGIN = env_choice("LOCAL_LOGIN", "on", ("on", "staff-only", "off"))
# The API keys of a user who signs in through a provider stop working (401)
# when their last sign-in there is older than this many days, so leavers lose
# access without anyone acting. 0: off.
SSO_REVALIDATE_DAYS = env_int("SSO_REVALIDATE_DAYS", 0, minimum=0, maximum=3650)
# `make run` only: start the test OpenID Connect provider beside the demo backend.
SSO_DEMO = env_bool("SSO_DEMO", False)
# importidps checks an aggregate's signature against this certificate (PEM).
SAML_METADATA_CERT_FILE = env_str("SAML_METADATA_CERT_FILE", "")
# The SP's own key pair (PEM files), for IdPs that encrypt assertions or want
# signed requests; without them assertions must arrive signed, in clear.
SAML_SP_CERT_FILE = env_str("SAML_SP_CERT_FILE", "")
SAML_SP_KEY_FILE = env_str("SAML_SP_KEY_FILE", "")

OIDC_APPS, OIDC_PROVIDERS_LISTED = env_oidc_providers()

SOCIALACCOUNT_ADAPTER = "sso.adapter.PorticoSocialAccountAdapter"
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        # allauth's provider, plus a nonce in every authorization request that
        # the ID token must echo (sso/providers.py).
        "provider_class": "sso.providers.NonceOpenIDConnectProvider",
        "OAUTH_PKCE_ENABLED": True,
        "APPS": OIDC_APPS,
    },
    "saml": {
        # allauth's provider with Portico's policy forced onto every IdP:
        # strict checks, signed assertions, no IdP-initiated logins.
        "provider_class": "sso.providers.PolicySAMLProvider",
    },
}
# Never ask a new SSO user to fill in a sign-up form when the provider gave
# what an account needs; link to an existing account only by an address both
# sides have verified (sso/adapter.py checks the account's side).
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_LOGIN_ON_GET = False
