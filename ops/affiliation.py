"""A user's affiliation, from the sign-in claims their identity provider
released (the staff analytics' breakdown by affiliation).

SAML `eduPersonScopedAffiliation` (OIDC `eduperson_scoped_affiliation`), else
the unscoped `eduPersonAffiliation`: the value's part before "@". Of several
values the most specific wins (faculty before staff before student ... before
member, the eduPerson vocabulary), since IdPs release them in no particular
order. Read from allauth's stored extra data of the user's social accounts,
the most recently used one that asserts an affiliation; users who never
signed in through such an IdP have none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from allauth.socialaccount.models import SocialAccount

from sso.claims import oidc_claims, saml_claims

# Scoped first: what research IdPs release; the scope (after "@") is dropped.
AFFILIATION_CLAIMS = (
    "eduPersonScopedAffiliation",
    "eduperson_scoped_affiliation",
    "eduPersonAffiliation",
    "eduperson_affiliation",
)
# The eduPerson vocabulary, most specific first ("member" says least).
AFFILIATION_ORDER = (
    "faculty",
    "staff",
    "employee",
    "student",
    "affiliate",
    "alum",
    "library-walk-in",
    "member",
)


def _claims(extra_data: Any) -> dict[str, list[str]]:
    """A social account's stored extra data as flat claims: OIDC accounts
    keep {"id_token": ..., "userinfo": ...}, SAML ones the attributes."""
    if not isinstance(extra_data, dict):
        return {}
    if isinstance(extra_data.get("id_token"), dict) or isinstance(
        extra_data.get("userinfo"), dict
    ):
        return oidc_claims(extra_data)
    return saml_claims(extra_data)


def affiliation_from_claims(claims: Mapping[str, Iterable[str]]) -> str | None:
    """The most specific affiliation the claims assert, without its scope."""
    for claim in AFFILIATION_CLAIMS:
        values = [
            str(value).partition("@")[0].strip().lower()
            for value in claims.get(claim, ())
        ]
        values = [value for value in values if value]
        if values:
            ranked = [a for a in AFFILIATION_ORDER if a in values]
            return ranked[0] if ranked else sorted(values)[0]
    return None


def affiliations(user_ids: Iterable[int]) -> dict[int, str]:
    """Each user's affiliation from their social accounts' claims (the most
    recently used account that asserts one)."""
    found: dict[int, str] = {}
    accounts = (
        SocialAccount.objects.filter(user_id__in=list(user_ids))
        .order_by("user_id", "-last_login")
        .values_list("user_id", "extra_data")
    )
    for user_id, extra_data in accounts:
        if user_id in found:
            continue
        affiliation = affiliation_from_claims(_claims(extra_data))
        if affiliation:
            found[user_id] = affiliation
    return found
