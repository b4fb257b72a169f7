"""Institutions on the login page and the rules that turn identity claims into
groups. The protocol state itself (apps, accounts, tokens) stays allauth's."""

from __future__ import annotations

import re
import unicodedata
from fnmatch import fnmatchcase

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models


class Institution(models.Model):
    """One sign-in choice: an OpenID Connect provider or a SAML IdP, found by
    name or e-mail domain in "Choose your institution".

    `provider_id` is the allauth provider id of the app behind it (a SocialApp
    row's `provider_id`, or an app from OIDC_PROVIDERS), so signing in is
    `get_provider(request, provider_id).redirect(...)`.
    """

    PROTOCOL_OIDC = "oidc"
    PROTOCOL_SAML = "saml"
    PROTOCOLS = [(PROTOCOL_OIDC, "OpenID Connect"), (PROTOCOL_SAML, "SAML 2.0")]

    provider_id = models.CharField(max_length=200, unique=True)
    protocol = models.CharField(max_length=8, choices=PROTOCOLS)
    name = models.CharField(max_length=300)
    domains = models.CharField(
        max_length=2000,
        blank=True,
        help_text="E-mail and scope domains, separated by spaces (ut.ee cs.ut.ee).",
    )
    # Lower-cased name and domains, written by `save()`'s callers through
    # `institution_search_text`; what the login page's search reads.
    search_text = models.TextField(blank=True, editable=False)
    entity_id = models.CharField(max_length=1024, blank=True)
    # Set for IdPs registered by importidps: which aggregate they came from.
    federation = models.CharField(max_length=64, blank=True)
    research_and_scholarship = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["federation", "entity_id"])]

    def __str__(self) -> str:
        return self.name


def search_fold(text: str) -> str:
    """Lower case without accents, for matching what people type: "ulikool"
    finds "Tartu Ülikool", and so does "Ülikool"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def institution_search_text(*, name: str, domains: str) -> str:
    return search_fold(" ".join([name, domains]).strip())


class ClaimGroupRule(models.Model):
    """A claim or attribute value that puts a user in a group, re-checked at
    every sign-in through the provider: the membership is added when matched
    and removed when the provider stops asserting it."""

    MATCH_EXACT = "exact"
    MATCH_GLOB = "glob"
    MATCH_REGEX = "regex"
    MATCHES = [
        (MATCH_EXACT, "equals"),
        (MATCH_GLOB, "matches the pattern (* and ?)"),
        (MATCH_REGEX, "matches the regular expression"),
    ]

    name = models.CharField(max_length=200, blank=True)
    # Empty: any provider; else an allauth provider id (or a federation name
    # prefixed "federation:", for every IdP importidps registered from it).
    provider = models.CharField(
        max_length=200,
        blank=True,
        help_text="A provider id, 'federation:NAME' for all IdPs of an "
        "imported aggregate, or empty for any provider.",
    )
    claim = models.CharField(
        max_length=300,
        help_text="OIDC claim (groups) or SAML attribute, by friendly name "
        "(eduPersonScopedAffiliation) or URI (urn:oid:…).",
    )
    match = models.CharField(max_length=8, choices=MATCHES, default=MATCH_EXACT)
    value = models.CharField(max_length=500)
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["claim", "value"]

    def __str__(self) -> str:
        return self.name or f"{self.claim} {self.get_match_display()} {self.value}"

    def clean(self) -> None:
        if self.match == self.MATCH_REGEX:
            try:
                re.compile(self.value)
            except re.error as error:
                raise ValidationError(
                    {"value": f"Not a regular expression: {error}"}
                ) from None

    def matches(self, candidate: str) -> bool:
        if self.match == self.MATCH_EXACT:
            return candidate == self.value
        if self.match == self.MATCH_GLOB:
            return fnmatchcase(candidate.casefold(), self.value.casefold())
        return re.fullmatch(self.value, candidate) is not None


class ClaimGroupGrant(models.Model):
    """A membership a provider's rules gave, so that rules only ever remove
    what rules added. One row per (user, group, provider): a sign-in through
    one provider never withdraws what another provider asserted.
    `preexisting`: the user was in the group already, by hand and through no
    other grant; the rule then never takes that membership away."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(ClaimGroupRule, on_delete=models.SET_NULL, null=True)
    provider = models.CharField(max_length=200)
    preexisting = models.BooleanField(default=False)
    granted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "group", "provider"],
                name="sso_one_grant_per_provider_membership",
            )
        ]

    def __str__(self) -> str:
        return f"{self.group} from {self.provider}"
