"""Settings > Account: the user's API keys (list, create, revoke, roll).

The raw key appears in exactly one response, marked no-store: post/redirect/get,
so that reloading it cannot make a second key. The POST that makes the key
leaves it in the cache under a random token, for KEY_SHOWN_SECONDS at most,
and puts only the token in the session; the GET that shows it takes it from
there (a reload finds nothing and shows the key list). A GET that never comes
leaves nothing behind once the cache entry expires: the key is never in the
session store, a message or a log.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, time

from allauth.account.decorators import reauthentication_required
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.adapter import local_login_allowed
from accounts.forms import ApiKeyCreateForm, ApiKeyRollForm
from accounts.keyformat import text_holds_key
from accounts.models import ApiKey, User
from accounts.reauth import reauthentication_due
from accounts.selectors import (
    apikey_expiry_cap,
    apikey_get,
    apikey_list,
    model_choices,
    user_has_mfa,
)
from accounts.services import (
    PASTED_KEY_MESSAGE,
    IssuedKey,
    apikey_create,
    apikey_revoke,
    apikey_roll,
    email_verification_resend,
    user_time_zone_set,
)
from portal.timezones import ZONE_COOKIE, zone_names


def api_base_url(request: HttpRequest) -> str:
    """The OpenAI base URL users paste into their clients."""
    if settings.SITE_URL:
        return f"{settings.SITE_URL}/v1"
    return request.build_absolute_uri("/v1")


# The redirect to the page that shows a new key follows at once; a key left in
# a session (the browser never followed) is not shown after this many seconds.
KEY_SHOWN_SECONDS = 300
SESSION_KEY = "portico_key_shown"


def key_expiry_end_of_day(day: date) -> datetime:
    # "Expires on 3 May" means the key still works all of 3 May in the
    # portal's time zone, and is shown as 3 May 23:59 there (not 4 May 00:00).
    tz = timezone.get_current_timezone()
    return datetime.combine(day, time.max, tzinfo=tz)


def _models_from_form(value: object) -> list[str] | None:
    if isinstance(value, str):
        value = [item for item in value.split(",") if item.strip()]
    return list(value) if value else None  # type: ignore[call-overload]


def _user_key(request: HttpRequest, key_id: int) -> ApiKey:
    key = apikey_get(user=request.user, key_id=key_id)  # type: ignore[arg-type]
    if key is None:
        raise Http404("No such key")
    return key


def _settings_page(
    request: HttpRequest, *, form: ApiKeyCreateForm, status: int = 200
) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    now = timezone.now()
    keys = [(key, key.state_at(now)) for key in apikey_list(user=user)]
    return render(
        request,
        "accounts/settings_account.html",
        {
            "form": form,
            "keys": keys,
            "expiry_cap": apikey_expiry_cap(now=now),
            "max_days": settings.API_KEY_MAX_LIFETIME_DAYS,
            "base_url": api_base_url(request),
            "mfa_enabled": user_has_mfa(user=user),
            "password_change": local_login_allowed(user=user),
            "staff_need_mfa": user.is_staff and settings.REQUIRE_STAFF_MFA,
            "time_zones": sorted(zone_names()),
            "browser_zone": request.COOKIES.get(ZONE_COOKIE, ""),
        },
        status=status,
    )


def _shown_cache_key(token: str) -> str:
    return f"key-shown:{token}"


def apikey_show_once(
    request: HttpRequest, *, issued: IssuedKey, rolled_from: ApiKey | None = None
) -> HttpResponse:
    """Leave the new key for the page that shows it, and redirect there."""
    token = secrets.token_urlsafe(24)
    cache.set(_shown_cache_key(token), issued.raw, timeout=KEY_SHOWN_SECONDS)
    request.session[SESSION_KEY] = {
        "token": token,
        "key_id": issued.key.pk,
        "rolled_from_id": rolled_from.pk if rolled_from else None,
        "expiry_capped": issued.expiry_capped,
        "at": timezone.now().timestamp(),
    }
    return redirect("settings_key_created")


@never_cache
@login_required
@require_http_methods(["GET", "HEAD"])
def apikey_created_view(request: HttpRequest) -> HttpResponse:
    """Show the key left by the POST, once: a reload lands on the key list."""
    user: User = request.user  # type: ignore[assignment]
    shown = request.session.pop(SESSION_KEY, None)
    if not shown or timezone.now().timestamp() - shown["at"] > KEY_SHOWN_SECONDS:
        return redirect("settings_account")
    raw = cache.get(_shown_cache_key(shown["token"]))
    cache.delete(_shown_cache_key(shown["token"]))
    if raw is None:
        return redirect("settings_account")
    key = apikey_get(user=user, key_id=shown["key_id"])
    if key is None:
        return redirect("settings_account")
    rolled_from = None
    if shown["rolled_from_id"]:
        rolled_from = apikey_get(user=user, key_id=shown["rolled_from_id"])
    issued = IssuedKey(key=key, raw=raw, expiry_capped=shown["expiry_capped"])
    allowed = key.allowed_models or model_choices(user=user)
    return render(
        request,
        "accounts/key_created.html",
        {
            "issued": issued,
            "key": key,
            "raw_key": issued.raw,
            "rolled_from": rolled_from,
            "base_url": api_base_url(request),
            "example_model": allowed[0] if allowed else "MODEL_ID",
        },
    )


@login_required
@require_http_methods(["GET", "HEAD"])
def settings_account(request: HttpRequest) -> HttpResponse:
    return _settings_page(
        request, form=ApiKeyCreateForm(model_choices=model_choices(user=request.user))
    )


@login_required
@require_POST
def time_zone_set_view(request: HttpRequest) -> HttpResponse:
    try:
        user_time_zone_set(
            user=request.user,  # type: ignore[arg-type]
            zone=str(request.POST.get("time_zone", ""))[:64],
        )
    except ValidationError:
        messages.error(request, _("That time zone does not exist."))
    else:
        messages.success(request, _("Time zone saved."))
    return redirect("settings_account")


@never_cache
@login_required
@require_POST
@reauthentication_required(enabled=reauthentication_due)
def apikey_create_view(request: HttpRequest) -> HttpResponse:
    # A key pasted into a field is refused and not echoed back into the form.
    data = request.POST.copy()
    pasted = [
        field
        for field in ("name", "models")
        if any(text_holds_key(value) for value in data.getlist(field))
    ]
    for field in pasted:
        data.setlist(field, [])
    form = ApiKeyCreateForm(data, model_choices=model_choices(user=request.user))
    if not form.is_valid() or pasted:
        for field in pasted:
            form.add_error(field, PASTED_KEY_MESSAGE)
        return _settings_page(request, form=form, status=400)
    expires_on = form.cleaned_data["expires_on"]
    try:
        issued = apikey_create(
            user=request.user,  # type: ignore[arg-type]
            name=form.cleaned_data["name"],
            expires_at=key_expiry_end_of_day(expires_on) if expires_on else None,
            allowed_models=_models_from_form(form.cleaned_data["models"]),
        )
    except ValidationError as error:
        for field, errors in error.message_dict.items():
            target = {"expires_at": "expires_on", "allowed_models": "models"}.get(
                field, field
            )
            form.add_error(target if target in form.fields else None, errors)
        return _settings_page(request, form=form, status=400)
    return apikey_show_once(request, issued=issued)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def apikey_revoke_view(request: HttpRequest, key_id: int) -> HttpResponse:
    key = _user_key(request, key_id)
    if request.method != "POST":
        return render(request, "accounts/key_revoke.html", {"key": key})
    apikey_revoke(key=key)
    messages.success(
        request,
        _("Revoked “%(name)s” (%(display)s).")
        % {"name": key.name, "display": key.display},
    )
    return redirect("settings_account")


@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
@reauthentication_required(enabled=reauthentication_due, allow_get=True)
def apikey_roll_view(request: HttpRequest, key_id: int) -> HttpResponse:
    key = _user_key(request, key_id)
    form = ApiKeyRollForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            issued = apikey_roll(
                key=key, grace_seconds=form.cleaned_data["grace_seconds"]
            )
        except ValidationError as error:
            for messages_ in error.message_dict.values():
                form.add_error(None, messages_)
        else:
            return apikey_show_once(request, issued=issued, rolled_from=key)
    status = 400 if form.errors else 200
    return render(
        request, "accounts/key_roll.html", {"key": key, "form": form}, status=status
    )


@require_POST
def email_verification_resend_view(request: HttpRequest) -> HttpResponse:
    sent = email_verification_resend(request=request)
    if sent is None:
        messages.info(request, _("Sign in to have a new verification link sent."))
        return redirect("account_login")
    if not sent:
        messages.info(
            request,
            _(
                "A link was sent a few minutes ago and still works; you can ask"
                " for another one shortly."
            ),
        )
    return redirect("account_email_verification_sent")
