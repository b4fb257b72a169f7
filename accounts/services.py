"""Writes for accounts: approval of pending sign-ups, operator bootstrap, and
API keys (create, revoke, roll, last use)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from allauth.account.internal.flows.email_verification import (
    get_address_for_login,
    send_verification_email_to_address,
)
from allauth.account.stages import EmailVerificationStage, LoginStageController
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from accounts.audit import apikey_revocation_log
from accounts.keyformat import key_generate, text_holds_key
from accounts.keysignal import apikey_generation_bump
from accounts.models import ApiKey, User
from accounts.selectors import apikey_expiry_cap
from portal.timezones import zone_valid


def user_mark_pending(*, user: User) -> User:
    """Hold a fresh sign-up until staff approve it (REGISTRATION_MODE=approval).

    The account is inactive, so allauth and Django refuse its logins, and it is
    flagged pending so that admin can tell it from a deactivated account.
    """
    user.is_active = False
    user.pending_approval = True
    return user


@transaction.atomic
def user_approve(*, user: User) -> User:
    """Let a pending account in. Approving an already active account is a no-op."""
    if not user.pending_approval:
        return user
    user.is_active = True
    user.pending_approval = False
    user.approved_at = timezone.now()
    user.save(update_fields=["is_active", "pending_approval", "approved_at"])
    return user


@transaction.atomic
def admin_ensure(*, username: str, email: str, password: str) -> tuple[User, bool]:
    """Create the first superuser if no superuser exists yet.

    Returns the superuser and whether it was created now, so `make run` prints a
    login only the first time and never resets a password an operator changed.
    The operator's address counts as verified: mandatory e-mail verification
    would otherwise send the printed login to a mailbox nobody reads.
    """
    from allauth.account.models import EmailAddress

    existing = User.objects.filter(is_superuser=True).order_by("pk").first()
    if existing is not None:
        return existing, False
    user = User.objects.create_superuser(
        username=username, email=email, password=password
    )
    EmailAddress.objects.get_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )
    return user, True


# --- API keys -------------------------------------------------------------------

MAX_ROLL_GRACE_SECONDS = 7 * 24 * 3600
MAX_ALLOWED_MODELS = 200
_MODEL_ID_FORBIDDEN = set(" \t\r\n,\"'<>\\")
# Keys pasted where they do not belong are refused, never stored or shown.
PASTED_KEY_MESSAGE = (
    "This looks like an API key: keys are secret, do not paste them here."
)


@dataclass(frozen=True)
class IssuedKey:
    """A key just made, with the raw key that exists nowhere else: show it once."""

    key: ApiKey
    raw: str = field(repr=False)
    # True when the expiry asked for (or its absence) was cut to the site's cap.
    expiry_capped: bool = False


def _allowed_models_clean(value: object) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise ValidationError({"allowed_models": "Give a list of model ids, or none."})
    cleaned: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise ValidationError({"allowed_models": "Model ids are strings."})
        item = item.strip()
        if not item:
            continue
        if text_holds_key(item):
            raise ValidationError({"allowed_models": PASTED_KEY_MESSAGE})
        if len(item) > 200 or any(
            char in _MODEL_ID_FORBIDDEN or not char.isprintable() for char in item
        ):
            raise ValidationError(
                {"allowed_models": "Model ids cannot hold spaces, commas or quotes."}
            )
        if item not in cleaned:
            cleaned.append(item)
    if not cleaned:
        raise ValidationError(
            {"allowed_models": "Name at least one model, or none to allow all."}
        )
    if len(cleaned) > MAX_ALLOWED_MODELS:
        raise ValidationError(
            {"allowed_models": f"At most {MAX_ALLOWED_MODELS} models per key."}
        )
    return cleaned


def _apikey_insert(**fields: object) -> tuple[ApiKey, str]:
    # A lookup id collision (59 random bits) is all but impossible; should one
    # happen, the unique index refuses it and a fresh key is drawn.
    for _ in range(3):
        generated = key_generate(site_tag=settings.API_KEY_SITE_TAG)
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    lookup_id=generated.lookup_id,
                    digest=generated.digest,
                    prefix=generated.prefix,
                    last4=generated.last4,
                    **fields,
                )
        except IntegrityError:
            continue
        return key, generated.raw
    raise RuntimeError("could not draw a unique API key lookup id")


@transaction.atomic
def apikey_create(
    *,
    user: User,
    name: str,
    expires_at: datetime | None = None,
    allowed_models: list[str] | None = None,
    rolled_from: ApiKey | None = None,
    project_id: int | None = None,
) -> IssuedKey:
    """Make a key for an active user; the raw key is returned, never stored.
    With `project_id` the key bills that project (projects.services checks
    membership before it asks for one).

    No key outlives API_KEY_MAX_LIFETIME_DAYS: a missing or later expiry is cut
    to the cap (and `expiry_capped` says so) rather than refused, so that "no
    expiry" keeps working on sites with a cap. A past expiry is refused.
    """
    name = (name or "").strip()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Give the key a name."
    elif len(name) > 100:
        errors["name"] = "Names have at most 100 characters."
    elif text_holds_key(name):
        errors["name"] = PASTED_KEY_MESSAGE
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        errors["expires_at"] = "The expiry must be in the future."
    if not user.is_active:
        errors["user"] = "This account is inactive."
    if errors:
        raise ValidationError(errors)
    models = _allowed_models_clean(allowed_models)
    cap = apikey_expiry_cap(now=now)
    capped = cap is not None and (expires_at is None or expires_at > cap)
    key, raw = _apikey_insert(
        user=user,
        name=name,
        allowed_models=models,
        created_at=now,
        expires_at=cap if capped else expires_at,
        rolled_from=rolled_from,
        project_id=project_id,
    )
    return IssuedKey(key=key, raw=raw, expiry_capped=capped)


@transaction.atomic
def apikey_revoke(*, key: ApiKey) -> ApiKey:
    """Stop a key for good, in every process within 2 seconds. Idempotent: the
    first revocation time is kept."""
    revoked = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    key.refresh_from_db(fields=["revoked_at"])
    if revoked:
        # update() is invisible to the audit log: record the revocation itself.
        apikey_revocation_log(key=key)
    apikey_generation_bump()
    return key


@transaction.atomic
def apikey_roll(*, key: ApiKey, grace_seconds: int = 0) -> IssuedKey:
    """Replace an active key with a new one of the same name, models and
    lifetime length (capped as at creation).

    The old key stops at once (grace 0, revoked) or expires after the grace
    period (at most 7 days, never later than it would have). A key is rolled
    once: a second roll of the same key is refused, so no key has two heirs.
    """
    old = ApiKey.objects.select_for_update().select_related("user").get(pk=key.pk)
    now = timezone.now()
    if not isinstance(grace_seconds, int) or not (
        0 <= grace_seconds <= MAX_ROLL_GRACE_SECONDS
    ):
        raise ValidationError(
            {"grace_seconds": "The grace period is 0 to 604800 seconds (7 days)."}
        )
    if old.state_at(now) != "active":
        raise ValidationError({"key": "Only an active key can be rolled."})
    if ApiKey.objects.filter(rolled_from=old).exists():
        raise ValidationError({"key": "This key was already rolled."})
    expires_at = None
    if old.expires_at is not None:
        expires_at = now + (old.expires_at - old.created_at)
    issued = apikey_create(
        user=old.user,
        name=old.name,
        expires_at=expires_at,
        allowed_models=old.allowed_models,
        rolled_from=old,
        project_id=old.project_id,
    )
    if grace_seconds == 0:
        old.revoked_at = now
    else:
        grace_end = now + timedelta(seconds=grace_seconds)
        old.expires_at = min(old.expires_at or grace_end, grace_end)
    old.save(update_fields=["revoked_at", "expires_at"])
    apikey_generation_bump()
    key.revoked_at, key.expires_at = old.revoked_at, old.expires_at
    return issued


def apikey_last_used_record(*, key_ids: list[int], used_at: datetime) -> int:
    """Record that keys were used at `used_at`, in one UPDATE.

    A row is written only when its `last_used_at` is empty or more than a minute
    older, so however many processes report a key, its row changes at most once
    a minute; the value only moves forward.
    """
    if not key_ids:
        return 0
    return (
        ApiKey.objects.filter(pk__in=key_ids)
        .filter(
            Q(last_used_at__isnull=True)
            | Q(last_used_at__lt=used_at - timedelta(seconds=60))
        )
        .update(last_used_at=used_at)
    )


def apikey_cache_invalidate() -> None:
    """Make every process re-check the keys it has cached (within 2 seconds).

    For changes that can take a key's power away without touching the key:
    admin edits of a user (active flag, groups, staff status) or deleting one.
    """
    apikey_generation_bump()


@transaction.atomic
def user_deactivate(*, user: User) -> User:
    """Lock a user out: no login and, within 2 seconds, no working API key."""
    user.is_active = False
    user.save(update_fields=["is_active"])
    apikey_generation_bump()
    return user


@transaction.atomic
def user_create_for_keys(*, username: str, is_staff: bool = False) -> User:
    """An account made by an operator for API use (issuekey --create-user): no
    usable password until someone sets one."""
    user = User(username=username, is_staff=is_staff)
    user.set_unusable_password()
    user.full_clean(exclude=["password", "email"])
    user.save()
    return user


def email_verification_resend(*, request: HttpRequest) -> bool | None:
    """Mail the verification link again to the sign-up waiting in this session.

    None: no login waits on verification here (the session ended or the address
    is verified), so there is nobody to send to. False: allauth's own
    confirm_email limit refused it; the link already sent still works. True:
    sent, and allauth has added its "sent to ..." message.
    """
    stage = LoginStageController.enter(request, EmailVerificationStage.key)
    if stage is None or stage.login.user is None:
        return None
    address = get_address_for_login(stage.login)
    if address is None or address.verified:
        return None
    return send_verification_email_to_address(request, address)


def user_time_zone_set(*, user: User, zone: str) -> User:
    """The zone `user` reads the portal in; "" follows the browser. A name
    that is not an IANA zone is refused, so a page never fails on it."""
    zone = zone.strip()
    if zone and not zone_valid(zone):
        raise ValidationError(f"Unknown time zone: {zone[:64]}")
    user.time_zone = zone
    user.save(update_fields=["time_zone"])
    return user
