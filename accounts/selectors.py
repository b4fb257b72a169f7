"""Reads for accounts, above all the one gate that turns a presented key into a
key record (`apikey_authenticate`); the proxy's cached gate (accounts.keycache)
calls it on a cache miss, so there is exactly one place that decides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from allauth.socialaccount.models import SocialAccount
from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from accounts.keyformat import (
    digest_matches,
    dummy_digest_compare,
    key_digest,
    key_parse,
    lookup_id_is_valid,
)
from accounts.models import ApiKey, User


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request speaks for, as the proxy and the access rule need it:
    small, immutable and free of ORM objects, so that a cache can hand it out
    across coroutines. Through the API door it is a key's (`key_id` set, the
    key's allowlist applies); through the browser door the session user's."""

    key_id: int | None
    lookup_id: str
    display: str
    user_id: int
    username: str
    is_staff: bool
    group_ids: tuple[int, ...]
    # None: every model the user may use; else only these public model ids.
    allowed_models: tuple[str, ...] | None
    expires_at: datetime | None
    browser: bool = False
    # SSO_REVALIDATE_DAYS: when the user's last sign-in through a provider
    # gets too old for keys to work (None: no provider, or the check is off).
    sign_in_due_at: datetime | None = None
    # A project key's project: its allocation is drawn on, not the user's own.
    project_id: int | None = None
    # Granted by a running project (set by the proxy from its cached table):
    # the dedicated service class whatever the user's groups.
    dedicated: bool = False

    def allows_model(self, public_id: str) -> bool:
        return self.allowed_models is None or public_id in self.allowed_models

    def is_expired_at(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def sign_in_lapsed_at(self, now: datetime) -> bool:
        return self.sign_in_due_at is not None and self.sign_in_due_at <= now


def apikey_authenticate(*, raw_key: str) -> ApiKey | None:
    """The key record a presented key stands for, if it may be used now.

    Refuses (None) a malformed key without a query, and an unknown, revoked or
    expired key or one of an inactive user after one indexed query. Unknown and
    malformed keys both cost a digest compare. The returned key has `user` loaded.
    """
    return _apikey_check(raw_key)[0]


def _apikey_check(raw_key: str) -> tuple[ApiKey | None, bool]:
    """`apikey_authenticate`, and whether any key has the presented lookup id
    (so a cache may refuse a made-up lookup id without asking again)."""
    parsed = key_parse(raw_key)
    if parsed is None:
        dummy_digest_compare(raw_key if isinstance(raw_key, str) else "")
        return None, False
    key = (
        ApiKey.objects.select_related("user").filter(lookup_id=parsed.lookup_id).first()
    )
    if key is None:
        dummy_digest_compare(raw_key)
        return None, False
    if not digest_matches(digest=key_digest(raw_key), stored=key.digest):
        return None, True
    if key.state_at(timezone.now()) != "active" or not key.user.is_active:
        return None, True
    return key, True


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """What the proxy's key cache learns from one look-up."""

    principal: Principal | None
    # A key with this lookup id exists (revoked, expired, another secret...).
    lookup_known: bool


def apikey_lookup(*, raw_key: str) -> KeyLookup:
    """`apikey_principal_get` with what a cache needs to refuse cheaply."""
    key, known = _apikey_check(raw_key)
    principal = None if key is None else _principal_of(key)
    return KeyLookup(principal=principal, lookup_known=known)


def apikey_principal_get(*, raw_key: str) -> Principal | None:
    """`apikey_authenticate`, answered as a Principal (two queries on success)."""
    key = apikey_authenticate(raw_key=raw_key)
    return None if key is None else _principal_of(key)


def _principal_of(key: ApiKey) -> Principal:
    group_ids = tuple(
        sorted(key.user.groups.values_list("pk", flat=True))  # type: ignore[attr-defined]
    )
    allowed = key.allowed_models
    return Principal(
        key_id=key.pk,
        lookup_id=key.lookup_id,
        display=key.display,
        user_id=key.user_id,
        username=key.user.get_username(),
        is_staff=key.user.is_staff,
        group_ids=group_ids,
        allowed_models=None if allowed is None else tuple(allowed),
        expires_at=key.expires_at,
        sign_in_due_at=sso_sign_in_due_at(user_id=key.user_id),
        project_id=key.project_id,
    )


def sso_sign_in_due_at(*, user_id: int) -> datetime | None:
    """When the keys of a user who signs in through a provider stop working
    for want of a fresh sign-in there (SSO_REVALIDATE_DAYS; leavers lose
    access once their institution stops letting them in). None for users with
    no provider, and always when the check is off (no query then)."""
    days = settings.SSO_REVALIDATE_DAYS
    if not days:
        return None
    latest = SocialAccount.objects.filter(user_id=user_id).aggregate(
        latest=Max("last_login")
    )["latest"]
    return None if latest is None else latest + timedelta(days=days)


def apikey_list(*, user: User) -> QuerySet[ApiKey]:
    """A user's keys, newest first, revoked ones included (the page greys them)."""
    return ApiKey.objects.filter(user=user).select_related("rolled_from", "project")


def apikey_get(*, user: User, key_id: int) -> ApiKey | None:
    """One of the user's own keys; another user's key is simply not found."""
    return ApiKey.objects.filter(user=user, pk=key_id).first()


def apikey_get_by_lookup_id(*, lookup_id: str) -> ApiKey | None:
    """For operators (revokekey), who name a key by its lookup id."""
    if not lookup_id_is_valid(lookup_id):
        return None
    return ApiKey.objects.select_related("user").filter(lookup_id=lookup_id).first()


def apikey_expiry_cap(*, now: datetime) -> datetime | None:
    """The latest expiry API_KEY_MAX_LIFETIME_DAYS allows for a key made now."""
    days = settings.API_KEY_MAX_LIFETIME_DAYS
    return now + timedelta(days=days) if days else None


def user_list_with_key_counts(queryset: QuerySet[User]) -> QuerySet[User]:
    """Annotate `active_key_count` (neither revoked nor expired) for admin lists."""
    now = timezone.now()
    active = Q(api_keys__revoked_at__isnull=True) & (
        Q(api_keys__expires_at__isnull=True) | Q(api_keys__expires_at__gt=now)
    )
    return queryset.annotate(active_key_count=Count("api_keys", filter=active))


def user_get_by_username(*, username: str) -> User | None:
    return User.objects.filter(username=username).first()


def principal_for_user(*, user: User, browser: bool = True) -> Principal:
    """The principal of a signed-in user with no key: the browser door's, and
    the one pages use to ask the access rule what the user may call."""
    return Principal(
        key_id=None,
        lookup_id="",
        display="browser session",
        user_id=user.pk,
        username=user.get_username(),
        is_staff=user.is_staff,
        group_ids=tuple(sorted(user.groups.values_list("pk", flat=True))),
        allowed_models=None,
        expires_at=None,
        browser=browser,
    )


ModelChoices = Callable[[User], list[str]]
_model_choices_source: ModelChoices | None = None


def model_choices_source_set(source: ModelChoices | None) -> None:
    """Where the key form's allowlist choices come from. The catalog, which
    sits above accounts, registers its access rule here when it loads."""
    global _model_choices_source
    _model_choices_source = source


def model_choices(*, user: User) -> list[str]:
    """Public ids of the models `user` may call, for the key form's allowlist.

    An empty list (no catalog installed) makes the form fall back to free
    text. An allowlist only narrows a key: the proxy still checks the user's
    own access on every request.
    """
    if _model_choices_source is None:
        return []
    return _model_choices_source(user)


def user_has_mfa(*, user: User) -> bool:
    """Whether signing in asks `user` for a second factor: an authenticator app
    or a security key. Recovery codes alone do not count; they only stand in
    for one of those. The same test allauth's login step applies (one query)."""
    return is_mfa_enabled(user, [Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN])


def staff_emails() -> list[str]:
    """Where requests that staff decide are announced: active staff with an
    address."""
    return list(
        User.objects.filter(is_staff=True, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
