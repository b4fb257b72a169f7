"""What a provider asserted at sign-in, as one flat map of claim name to
values, the shape group rules match against.

OpenID Connect: the ID token's claims overlaid with userinfo's; nested objects
are reachable by dotted path (Keycloak's `realm_access.roles`). SAML: the
attributes as released, under their URI names and, for the eduPerson and
SCHAC attributes research IdPs release, under their friendly names too, so a
rule can say `eduPersonScopedAffiliation` whatever the IdP's name format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SAML_ATTRIBUTE_OIDS: dict[str, str] = {
    "eduPersonAffiliation": "urn:oid:1.3.6.1.4.1.5923.1.1.1.1",
    "eduPersonEntitlement": "urn:oid:1.3.6.1.4.1.5923.1.1.1.7",
    "eduPersonPrincipalName": "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",
    "eduPersonScopedAffiliation": "urn:oid:1.3.6.1.4.1.5923.1.1.1.9",
    "eduPersonTargetedID": "urn:oid:1.3.6.1.4.1.5923.1.1.1.10",
    "eduPersonUniqueId": "urn:oid:1.3.6.1.4.1.5923.1.1.1.13",
    "eduPersonAssurance": "urn:oid:1.3.6.1.4.1.5923.1.1.1.11",
    "eduPersonOrcid": "urn:oid:1.3.6.1.4.1.5923.1.1.1.16",
    "isMemberOf": "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
    "schacHomeOrganization": "urn:oid:1.3.6.1.4.1.25178.1.2.9",
    "schacHomeOrganizationType": "urn:oid:1.3.6.1.4.1.25178.1.2.10",
    "mail": "urn:oid:0.9.2342.19200300.100.1.3",
    "givenName": "urn:oid:2.5.4.42",
    "sn": "urn:oid:2.5.4.4",
    "cn": "urn:oid:2.5.4.3",
    "displayName": "urn:oid:2.16.840.1.113730.3.1.241",
    "uid": "urn:oid:0.9.2342.19200300.100.1.1",
    "ou": "urn:oid:2.5.4.11",
    "o": "urn:oid:2.5.4.10",
}
FRIENDLY_NAMES = {oid: name for name, oid in SAML_ATTRIBUTE_OIDS.items()}

# Claims too large or too private to keep in a rule's reach or on a page.
MAX_VALUES_PER_CLAIM = 500


def _scalars(value: Any) -> list[str]:
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, str | int | float):
        return [str(value)]
    if isinstance(value, list | tuple):
        return [
            s for item in value for s in _scalars(item) if not isinstance(item, dict)
        ]
    return []


def _flatten(prefix: str, data: Mapping[str, Any], into: dict[str, list[str]]) -> None:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(f"{name}.", value, into)
        else:
            values = _scalars(value)
            if values:
                into[name] = values[:MAX_VALUES_PER_CLAIM]


def oidc_claims(extra_data: Mapping[str, Any]) -> dict[str, list[str]]:
    """allauth keeps {"id_token": {...}, "userinfo": {...}}; userinfo wins."""
    claims: dict[str, list[str]] = {}
    for part in ("id_token", "userinfo"):
        section = extra_data.get(part)
        if isinstance(section, dict):
            _flatten("", section, claims)
    return claims


def saml_claims(attributes: Mapping[str, Any]) -> dict[str, list[str]]:
    claims: dict[str, list[str]] = {}
    for name, values in attributes.items():
        scalars = _scalars(values)[:MAX_VALUES_PER_CLAIM]
        claims[name] = scalars
        friendly = FRIENDLY_NAMES.get(name)
        if friendly is not None:
            claims.setdefault(friendly, scalars)
    return claims


def claims_of(*, provider: str, extra_data: Mapping[str, Any]) -> dict[str, list[str]]:
    """The flat claims of a social account's stored extra data. `provider` is
    allauth's provider class id ("openid_connect" or "saml")."""
    if provider == "saml":
        return saml_claims(extra_data)
    return oidc_claims(extra_data)


def values_matching(claims: Mapping[str, Iterable[str]], claim: str) -> Iterable[str]:
    return claims.get(claim, ())
