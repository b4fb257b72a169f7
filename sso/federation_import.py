"""Registers a federation's IdPs (read by sso.federation) for sign-in: per IdP
one allauth SocialApp (provider "saml", client_id the federation slug shared by
all its IdPs, so the federation sees one SP with one ACS URL) and one
Institution for the login page's search.

An IdP that leaves the file (or the R&S filter) is disabled: its Institution
stays, enabled=False, so its users' SocialAccounts, claim rules and history
keep their provider id, and its SocialApp is deleted. Deleting the app rather
than marking it is what makes the IdP's key stop counting at once: allauth
then finds no app for the provider id, whatever adapter or view asks, so an
IdP dropped from the federation (perhaps for a leaked key) can no longer sign
anyone in. When it comes back, the app is created again and the Institution
re-enabled, under the same provider id.

Written for eduGAIN's ~5,000 IdPs: a handful of queries, not one per IdP.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from allauth.socialaccount.models import SocialApp
from django.db import transaction
from django.utils import timezone

from sso.federation import FederatedIdP
from sso.models import Institution, institution_search_text

SAML_PROVIDER = "saml"
FEDERATION_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
READABLE_MAX = 60  # the host part of a provider id, for people reading it
BATCH = 1000
_INSTITUTION_FIELDS = [
    "protocol",
    "name",
    "domains",
    "search_text",
    "entity_id",
    "federation",
    "research_and_scholarship",
    "enabled",
]


class FederationImportError(Exception):
    """The import is refused; nothing was written."""


@dataclass(frozen=True)
class FederationImportResult:
    created: int
    updated: int
    unchanged: int
    disabled: int


@dataclass
class _Plan:
    institutions_new: list[Institution] = field(default_factory=list)
    institutions_changed: list[Institution] = field(default_factory=list)
    apps_new: list[SocialApp] = field(default_factory=list)
    apps_changed: list[SocialApp] = field(default_factory=list)
    app_ids_gone: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ["created", "updated", "unchanged", "disabled"], 0
        )
    )


def federation_provider_id(*, federation: str, entity_id: str) -> str:
    """`<federation>-<host>-<sha256(entity ID)[:8]>`: stable across imports
    (SocialAccounts and claim rules name IdPs by it), readable in the admin,
    and only [a-z0-9-], as allauth's URLs and templates want."""
    try:
        parts = urlsplit(entity_id)
        host = parts.hostname if parts.scheme in ("http", "https") else None
    except ValueError:
        host = None
    readable = host or entity_id.removeprefix("urn:")
    slug = re.sub(r"[^a-z0-9]+", "-", readable.lower()).strip("-")
    slug = slug[:READABLE_MAX].strip("-") or "idp"
    digest = hashlib.sha256(entity_id.encode()).hexdigest()[:8]
    return f"{federation}-{slug}-{digest}"


def federation_import(
    *,
    federation: str,
    idps: list[FederatedIdP],
    only_research_and_scholarship: bool = False,
) -> FederationImportResult:
    """Make the federation's SocialApps and Institutions match `idps`, in one
    transaction; running it again with the same IdPs changes nothing."""
    if not FEDERATION_SLUG.fullmatch(federation):
        raise FederationImportError(
            f"Federation name {federation!r} must be 1-64 of a-z, 0-9 and '-' "
            "(not at either end)."
        )
    wanted = _wanted(
        federation=federation, idps=idps, only_rs=only_research_and_scholarship
    )
    with transaction.atomic():
        institutions = {
            institution.provider_id: institution
            for institution in Institution.objects.select_for_update().filter(
                federation=federation
            )
        }
        apps: dict[str, list[SocialApp]] = {}
        for app in SocialApp.objects.filter(
            provider=SAML_PROVIDER, client_id=federation
        ).order_by("pk"):
            apps.setdefault(app.provider_id, []).append(app)
        _guards_check(federation=federation, wanted=wanted, institutions=institutions)
        plan = _plan(
            federation=federation, wanted=wanted, institutions=institutions, apps=apps
        )
        _plan_apply(plan)
    return FederationImportResult(**plan.counts)


def _wanted(
    *, federation: str, idps: list[FederatedIdP], only_rs: bool
) -> dict[str, FederatedIdP]:
    wanted: dict[str, FederatedIdP] = {}
    for idp in idps:
        if only_rs and not idp.research_and_scholarship:
            continue
        provider_id = federation_provider_id(
            federation=federation, entity_id=idp.entity_id
        )
        other = wanted.setdefault(provider_id, idp)
        if other.entity_id != idp.entity_id:
            raise FederationImportError(
                f"{idp.entity_id} and {other.entity_id} map to one provider id "
                f"({provider_id}); refused, as one would sign in as the other."
            )
    return wanted


def _guards_check(
    *,
    federation: str,
    wanted: dict[str, FederatedIdP],
    institutions: dict[str, Institution],
) -> None:
    """Refuse what would lose sign-ins by mistake: a file with no IdPs left
    (disabling the whole federation is an admin's act, not an import's), or
    provider ids already taken outside this federation."""
    enabled = sum(institution.enabled for institution in institutions.values())
    if not wanted and enabled:
        raise FederationImportError(
            f"No IdP to import; refusing to disable all {enabled} of {federation}."
        )
    new = [provider_id for provider_id in wanted if provider_id not in institutions]
    if not new:
        return
    taken = Institution.objects.filter(provider_id__in=new).values_list(
        "provider_id", flat=True
    )
    if taken := list(taken[:5]):
        raise FederationImportError(
            f"Provider ids already used outside {federation}: {', '.join(taken)}."
        )


def _plan(
    *,
    federation: str,
    wanted: dict[str, FederatedIdP],
    institutions: dict[str, Institution],
    apps: dict[str, list[SocialApp]],
) -> _Plan:
    plan = _Plan()
    now = timezone.now()
    for provider_id, idp in wanted.items():
        fields = _institution_fields(federation=federation, idp=idp)
        institution = institutions.get(provider_id)
        if institution is None:
            plan.institutions_new.append(Institution(provider_id=provider_id, **fields))
            institution_changed = True
        else:
            institution_changed = _changes_set(institution, fields)
            if institution_changed:
                institution.updated_at = now
                plan.institutions_changed.append(institution)
        app, *extra = apps.pop(provider_id, [None])
        plan.app_ids_gone.extend(each.pk for each in extra)
        app_changed = _app_plan(
            plan=plan, app=app, provider_id=provider_id, idp=idp, federation=federation
        )
        if institution is None:
            plan.counts["created"] += 1
        elif institution_changed or app_changed:
            plan.counts["updated"] += 1
        else:
            plan.counts["unchanged"] += 1
    _vanished_plan(plan=plan, wanted=wanted, institutions=institutions, apps=apps)
    return plan


def _vanished_plan(
    *,
    plan: _Plan,
    wanted: dict[str, FederatedIdP],
    institutions: dict[str, Institution],
    apps: dict[str, list[SocialApp]],
) -> None:
    """Disable what the file no longer lists; `apps` holds only the apps not
    claimed by a wanted IdP by now."""
    now = timezone.now()
    for provider_id, institution in institutions.items():
        if provider_id in wanted:
            continue
        if institution.enabled or provider_id in apps:
            plan.counts["disabled"] += 1
        if institution.enabled:
            institution.enabled = False
            institution.updated_at = now
            plan.institutions_changed.append(institution)
    plan.app_ids_gone.extend(app.pk for group in apps.values() for app in group)


def _institution_fields(*, federation: str, idp: FederatedIdP) -> dict[str, object]:
    name = _fit(idp.display_name, Institution._meta.get_field("name").max_length)
    domains = _domains_fit(
        idp.domains, Institution._meta.get_field("domains").max_length
    )
    return {
        "protocol": Institution.PROTOCOL_SAML,
        "name": name,
        "domains": domains,
        "search_text": institution_search_text(name=name, domains=domains),
        "entity_id": idp.entity_id,
        "federation": federation,
        "research_and_scholarship": idp.research_and_scholarship,
        "enabled": True,
    }


def _app_plan(
    *,
    plan: _Plan,
    app: SocialApp | None,
    provider_id: str,
    idp: FederatedIdP,
    federation: str,
) -> bool:
    """Queue the app's creation or update; True when it changes. Keys of
    `settings` other than ours (an admin's attribute_mapping) are kept."""
    name = _fit(idp.display_name, SocialApp._meta.get_field("name").max_length)
    settings = {
        **(app.settings if app is not None and isinstance(app.settings, dict) else {}),
        "idp": {
            "entity_id": idp.entity_id,
            "sso_url": idp.sso_url,
            "x509cert": idp.signing_cert,
        },
        "federation": federation,
        # The IdP is the authority for the domains the federation registered
        # as its scopes: an address there counts as verified (and may link to
        # an account that verified it too); any other address does not.
        "verified_email": list(idp.domains),
    }
    if app is None:
        plan.apps_new.append(
            SocialApp(
                provider=SAML_PROVIDER,
                provider_id=provider_id,
                name=name,
                client_id=federation,
                settings=settings,
            )
        )
        return True
    if app.name == name and app.settings == settings:
        return False
    app.name, app.settings = name, settings
    plan.apps_changed.append(app)
    return True


def _plan_apply(plan: _Plan) -> None:
    Institution.objects.bulk_create(plan.institutions_new, batch_size=BATCH)
    Institution.objects.bulk_update(
        plan.institutions_changed,
        [*_INSTITUTION_FIELDS, "updated_at"],
        batch_size=BATCH,
    )
    SocialApp.objects.bulk_create(plan.apps_new, batch_size=BATCH)
    SocialApp.objects.bulk_update(
        plan.apps_changed, ["name", "settings"], batch_size=BATCH
    )
    if plan.app_ids_gone:
        SocialApp.objects.filter(pk__in=plan.app_ids_gone).delete()


def _changes_set(institution: Institution, fields: dict[str, object]) -> bool:
    changed = False
    for name, value in fields.items():
        if getattr(institution, name) != value:
            setattr(institution, name, value)
            changed = True
    return changed


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _domains_fit(domains: tuple[str, ...], limit: int) -> str:
    """As many domains as the field holds; hosted IdPs list hundreds."""
    kept: list[str] = []
    length = -1  # no space before the first
    for domain in domains:
        length += 1 + len(domain)
        if length > limit:
            break
        kept.append(domain)
    return " ".join(kept)
