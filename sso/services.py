"""What a sign-in through a provider changes: group memberships from claims,
the profile the provider asserts, and the key cache that must see both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialApp
from django.conf import settings
from django.db import transaction
from django.db.models import Q

from accounts.models import User
from accounts.services import apikey_cache_invalidate
from sso.claims import claims_of
from sso.models import (
    ClaimGroupGrant,
    ClaimGroupRule,
    Institution,
    institution_search_text,
)


@dataclass(frozen=True)
class GroupChanges:
    added: tuple[int, ...]
    removed: tuple[int, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


def rules_for_provider(*, provider_id: str, federation: str) -> list[ClaimGroupRule]:
    scopes = Q(provider="") | Q(provider=provider_id)
    if federation:
        scopes |= Q(provider=f"federation:{federation}")
    return list(ClaimGroupRule.objects.filter(scopes, enabled=True).order_by("pk"))


def _rules_matched(
    rules: list[ClaimGroupRule], claims: dict[str, list[str]]
) -> dict[int, ClaimGroupRule]:
    matched: dict[int, ClaimGroupRule] = {}
    for rule in rules:
        if rule.group_id in matched:
            continue
        if any(rule.matches(value) for value in claims.get(rule.claim, ())):
            matched[rule.group_id] = rule
    return matched


@transaction.atomic
def claim_groups_apply(
    *, user: User, provider_id: str, federation: str, claims: dict[str, list[str]]
) -> GroupChanges:
    """Bring the groups `provider_id`'s rules give `user` in line with what the
    provider asserts now: matched rules add the group, a group a rule added
    earlier goes once no rule of this provider matches it any more.

    Memberships made by hand are never removed (a grant on top of one is
    `preexisting`), nor are those another provider's rules gave.
    """
    matched = _rules_matched(
        rules_for_provider(provider_id=provider_id, federation=federation), claims
    )
    member_of = set(user.groups.values_list("pk", flat=True))
    grants = {
        g.group_id: g
        for g in ClaimGroupGrant.objects.select_for_update().filter(
            user=user, provider=provider_id
        )
    }
    added = [gid for gid in matched if gid not in member_of]
    for group_id, rule in matched.items():
        grant = grants.get(group_id)
        if grant is None:
            others = ClaimGroupGrant.objects.filter(user=user, group_id=group_id)
            ClaimGroupGrant.objects.create(
                user=user,
                group_id=group_id,
                rule=rule,
                provider=provider_id,
                preexisting=group_id in member_of and not others.exists(),
            )
        elif grant.rule_id != rule.pk:
            grant.rule = rule
            grant.save(update_fields=["rule"])
    removed = []
    for group_id, grant in grants.items():
        if group_id in matched:
            continue
        grant.delete()
        still_granted = ClaimGroupGrant.objects.filter(user=user, group_id=group_id)
        if not grant.preexisting and not still_granted.exists():
            removed.append(group_id)
    if added:
        user.groups.add(*added)
    if removed:
        user.groups.remove(*removed)
    return GroupChanges(added=tuple(added), removed=tuple(removed))


def _email_verified(sociallogin: Any, email: str) -> bool:
    return any(
        a.verified and a.email.lower() == email.lower()
        for a in sociallogin.email_addresses
    )


@transaction.atomic
def user_profile_refresh(
    *, user: User, first_name: str, last_name: str, email: str, email_verified: bool
) -> list[str]:
    """Take the name and e-mail address the provider asserts at this sign-in.

    Names follow the provider whenever it sends them. An address is taken only
    when the provider vouches for it and no other account has it, so a
    provider can never move someone else's address onto this account.
    """
    changed = []
    if first_name and first_name != user.first_name:
        user.first_name, changed = first_name[:150], [*changed, "first_name"]
    if last_name and last_name != user.last_name:
        user.last_name, changed = last_name[:150], [*changed, "last_name"]
    if (
        email
        and email_verified
        and email.lower() != (user.email or "").lower()
        and not EmailAddress.objects.filter(email__iexact=email)
        .exclude(user=user)
        .exists()
    ):
        address, _ = EmailAddress.objects.get_or_create(
            user=user, email=email, defaults={"verified": True}
        )
        if not address.verified:
            address.verified = True
            address.save(update_fields=["verified"])
        address.set_as_primary()
        user.email, changed = email, [*changed, "email"]
    if changed:
        user.save(update_fields=changed)
    return changed


def sso_login_record(*, user: User, sociallogin: Any) -> GroupChanges:
    """Everything a sign-in through a provider updates, in one place: groups
    from its claims, the asserted profile, and (so that keys paused by
    SSO_REVALIDATE_DAYS work again and group changes reach `/v1/models`
    within 2 seconds) the key cache of every process."""
    provider = sociallogin.provider
    app_settings = (provider.app.settings or {}) if provider.app else {}
    changes = claim_groups_apply(
        user=user,
        provider_id=sociallogin.account.provider,
        federation=app_settings.get("federation", ""),
        claims=claims_of(
            provider=provider.id, extra_data=sociallogin.account.extra_data
        ),
    )
    profile = getattr(sociallogin, "asserted_profile", None)
    if profile:
        user_profile_refresh(
            user=user,
            first_name=profile["first_name"],
            last_name=profile["last_name"],
            email=profile["email"],
            email_verified=_email_verified(sociallogin, profile["email"]),
        )
    if changes or settings.SSO_REVALIDATE_DAYS:
        apikey_cache_invalidate()
    return changes


def oidc_app_upsert(
    *,
    provider_id: str,
    name: str,
    client_id: str,
    secret: str,
    server_url: str,
    domains: tuple[str, ...] = (),
) -> SocialApp:
    """Register (or point at a new address) an OpenID Connect provider kept in
    the database, with the login page's description of it. For providers that
    move between runs, like the demo provider of `SSO_DEMO=1 make run`."""
    app, _ = SocialApp.objects.update_or_create(
        provider="openid_connect",
        provider_id=provider_id,
        defaults={
            "name": name,
            "client_id": client_id,
            "secret": secret,
            "settings": {"server_url": server_url},
        },
    )
    joined = " ".join(d.lower() for d in domains)
    Institution.objects.update_or_create(
        provider_id=provider_id,
        defaults={
            "protocol": Institution.PROTOCOL_OIDC,
            "name": name,
            "domains": joined,
            "search_text": institution_search_text(name=name, domains=joined),
        },
    )
    return app
