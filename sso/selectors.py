"""Reads for the login page and Settings: which institutions a person can sign
in with, found by name or e-mail domain, and what their providers gave them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from allauth.socialaccount.models import SocialAccount, SocialApp
from django.conf import settings
from django.db.models import Case, CharField, IntegerField, Q, Value, When
from django.db.models.functions import Concat

from accounts.models import User
from sso.models import (
    ClaimGroupGrant,
    Institution,
    institution_search_text,
    search_fold,
)

SIGN_IN_PROVIDERS = ("openid_connect", "saml")
MAX_QUERY_LENGTH = 100


@dataclass(frozen=True)
class SignInChoice:
    provider_id: str
    name: str
    domains: tuple[str, ...]


def _listed_apps() -> list[SignInChoice]:
    """Providers configured one by one (OIDC_PROVIDERS and admin), not those a
    federation brought: a handful, listed as buttons."""
    choices = [
        SignInChoice(provider_id=p.provider_id, name=p.name, domains=p.domains)
        for p in settings.OIDC_PROVIDERS_LISTED
    ]
    # Federation apps (thousands, each with its IdP's certificate) stay in
    # the database: loading them all cost ~80 ms per page with 5,000 IdPs.
    # The key test is the SQL side of `federation_app`; the Python one below
    # still decides for a key an admin left empty.
    outside_federations = (
        ~Q(settings__has_key="federation")
        | Q(settings__federation="")
        | Q(settings__federation=None)
    )
    apps = (
        SocialApp.objects.filter(outside_federations, provider__in=SIGN_IN_PROVIDERS)
        .exclude(provider_id="")
        .only("provider_id", "name", "settings")
    )
    for app in apps:
        if (app.settings or {}).get("federation"):
            continue
        choices.append(
            SignInChoice(provider_id=app.provider_id, name=app.name, domains=())
        )
    described = {
        i.provider_id: i
        for i in Institution.objects.filter(
            provider_id__in=[c.provider_id for c in choices]
        )
    }
    return [
        SignInChoice(
            provider_id=c.provider_id,
            name=described[c.provider_id].name
            if c.provider_id in described
            else c.name,
            domains=tuple(described[c.provider_id].domains.split())
            if c.provider_id in described
            else c.domains,
        )
        for c in choices
        if c.provider_id not in described or described[c.provider_id].enabled
    ]


@dataclass(frozen=True)
class SignInOptions:
    buttons: list[SignInChoice]
    searchable: bool  # more than one provider: "Choose your institution"


def sign_in_options() -> SignInOptions:
    buttons = _listed_apps()
    federated = Institution.objects.filter(enabled=True).exclude(federation="")
    return SignInOptions(
        buttons=buttons, searchable=len(buttons) > 1 or federated.exists()
    )


def _domain_suffixes(token: str) -> list[str]:
    domain = token.rpartition("@")[2].strip(".")
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)] if "." in domain else []


def _rank(choice: SignInChoice, query: str, suffixes: list[str]) -> tuple[int, str]:
    if any(d.casefold() in suffixes for d in choice.domains):
        return (0, choice.name.casefold())
    if search_fold(choice.name).startswith(query):
        return (1, choice.name.casefold())
    return (2, choice.name.casefold())


def institution_search(*, query: str, limit: int = 10) -> list[SignInChoice]:
    """Institutions whose name contains every word of `query`, or whose e-mail
    domain is the one typed (alice@cs.ut.ee finds ut.ee); best matches first:
    the domain, then names starting with the query."""
    query = search_fold(" ".join(query.split()))[:MAX_QUERY_LENGTH]
    if not query:
        return []
    tokens = query.split()
    suffixes = list(
        dict.fromkeys(s for token in tokens for s in _domain_suffixes(token))
    )
    by_words = Q()
    for token in tokens:
        by_words &= Q(search_text__contains=token)
    # One domain of the space-separated list, whole: " ut.ee " in " x ut.ee ".
    # A plain LIKE (every writer stores domains lower-case), not a regular
    # expression: several ms less per query with 5,000 IdPs.
    by_domain = Q()
    for suffix in suffixes:
        by_domain |= Q(padded_domains__contains=f" {suffix} ")
    # Ranked in SQL as `_rank` ranks, before the LIMIT: ordered by name
    # alone, a query matching more rows than are fetched ("college") could
    # lose the domain match, or the names starting with the query, past it.
    ranks = [When(by_domain, then=Value(0))] if suffixes else []
    ranks.append(When(search_text__startswith=query, then=Value(1)))
    rows = (
        Institution.objects.annotate(
            padded_domains=Concat(
                Value(" "), "domains", Value(" "), output_field=CharField()
            )
        )
        .filter(by_words | by_domain, enabled=True)
        .annotate(
            search_rank=Case(*ranks, default=Value(2), output_field=IntegerField())
        )
        .order_by("search_rank", "name")
        .only("provider_id", "name", "domains")
    )
    found = {
        row.provider_id: SignInChoice(
            provider_id=row.provider_id,
            name=row.name,
            domains=tuple(row.domains.split()),
        )
        for row in rows[: limit * 5]
    }
    for choice in _listed_apps():
        text = institution_search_text(
            name=choice.name, domains=" ".join(choice.domains)
        )
        if all(t in text for t in tokens) or any(
            d.casefold() in suffixes for d in choice.domains
        ):
            found.setdefault(choice.provider_id, choice)
    ranked = sorted(found.values(), key=lambda c: _rank(c, query, suffixes))
    return ranked[:limit]


def sign_in_choice_get(*, provider_id: str) -> SignInChoice | None:
    """The choice behind a start-sign-in request, if it is one users may pick."""
    for choice in _listed_apps():
        if choice.provider_id == provider_id:
            return choice
    row = Institution.objects.filter(provider_id=provider_id, enabled=True).first()
    if row is None:
        return None
    return SignInChoice(
        provider_id=row.provider_id, name=row.name, domains=tuple(row.domains.split())
    )


@dataclass(frozen=True)
class LinkedProvider:
    provider_id: str
    name: str
    last_sign_in: datetime | None


@dataclass(frozen=True)
class GroupFromClaims:
    group: str
    provider: str
    rule: str


def institution_names(provider_ids: list[str]) -> dict[str, str]:
    names = {p.provider_id: p.name for p in settings.OIDC_PROVIDERS_LISTED}
    for app in SocialApp.objects.filter(provider_id__in=provider_ids):
        names[app.provider_id] = app.name
    for row in Institution.objects.filter(provider_id__in=provider_ids):
        names[row.provider_id] = row.name
    return names


def sso_profile(*, user: User) -> tuple[list[LinkedProvider], list[GroupFromClaims]]:
    """What Settings > Account shows: the providers this account signs in
    with, and which rule of which provider gave which group."""
    accounts = list(SocialAccount.objects.filter(user=user).order_by("-last_login"))
    grants = list(
        ClaimGroupGrant.objects.filter(user=user).select_related("group", "rule")
    )
    names = institution_names(
        [a.provider for a in accounts] + [g.provider for g in grants]
    )
    linked = [
        LinkedProvider(
            provider_id=a.provider,
            name=names.get(a.provider, a.provider),
            last_sign_in=a.last_login,
        )
        for a in accounts
    ]
    groups = [
        GroupFromClaims(
            group=g.group.name,
            provider=names.get(g.provider, g.provider),
            rule=str(g.rule) if g.rule else "(rule deleted)",
        )
        for g in grants
    ]
    return linked, groups
