"""allauth adapters: the account adapter applies REGISTRATION_MODE and lets a
fresh login count as a recent reauthentication; the MFA adapter pins WebAuthn
to the public site and draws QR codes that can be scanned on either theme."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

import qrcode
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.stagekit import clear_login
from allauth.core import context
from allauth.mfa.adapter import DefaultMFAAdapter
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from qrcode.image.svg import SvgPathFillImage

from accounts.models import User
from accounts.reauth import reauthentication_due
from accounts.services import user_mark_pending

# Where the adapter keeps the last verification link when MAIL_SHOWN_ON_PAGE.
MAIL_LINK_SESSION_KEY = "portico_mail_link"


@dataclass(frozen=True)
class MailSite:
    """What allauth's mail templates call `current_site`: the portal's name and
    its public host (SITE_URL), else the host the request came to."""

    name: str
    domain: str


def mail_site(*, request: HttpRequest | None) -> MailSite:
    domain = urlsplit(settings.SITE_URL).netloc if settings.SITE_URL else ""
    if not domain and request is not None:
        domain = request.get_host()
    return MailSite(name=settings.SITE_NAME, domain=domain)


def local_login_allowed(*, user: User) -> bool:
    """LOCAL_LOGIN: may `user` sign in with a password (or a passkey) here?"""
    if settings.LOCAL_LOGIN == "on":
        return True
    return settings.LOCAL_LOGIN == "staff-only" and user.is_staff


def _current_request() -> HttpRequest | None:
    return getattr(context, "request", None)


class PorticoAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Password sign-ups; first sign-ins through a provider are the
        # socialaccount adapter's call (sso/adapter.py).
        return settings.REGISTRATION_MODE != "closed" and settings.LOCAL_LOGIN == "on"

    def pre_login(
        self, request: HttpRequest, user: User, **kwargs: Any
    ) -> HttpResponse | None:
        through_provider = "sociallogin" in (kwargs.get("signal_kwargs") or {})
        if not through_provider and not local_login_allowed(user=user):
            clear_login(request)
            return render(
                request,
                "account/local_login_refused.html",
                {"staff_only": settings.LOCAL_LOGIN == "staff-only"},
                status=403,
            )
        return super().pre_login(request, user, **kwargs)

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        # Without django.contrib.sites allauth greets "Hello from <host:port>!".
        request = _current_request()
        super().send_mail(
            template_prefix,
            email,
            {"current_site": mail_site(request=request)} | context,
        )
        link = context.get("activate_url")
        if settings.MAIL_SHOWN_ON_PAGE and link and request is not None:
            request.session[MAIL_LINK_SESSION_KEY] = link

    def save_user(
        self, request: HttpRequest, user: User, form: Any, commit: bool = True
    ) -> User:
        user = super().save_user(request, user, form, commit=False)
        if settings.REGISTRATION_MODE == "approval":
            user_mark_pending(user=user)
        if commit:
            user.save()
        return user

    def get_reauthentication_methods(self, user: Any) -> list[dict[str, str]]:
        methods = super().get_reauthentication_methods(user)
        # Accounts made by a sign-in through an institution have no password:
        # signing in there again is how they confirm it is them.
        if user.is_authenticated and user.socialaccount_set.exists():
            methods.append(
                {
                    "id": "sso",
                    "description": "Sign in again through your institution",
                    "url": reverse("sso_reauthenticate"),
                }
            )
        return methods

    def is_reauthentication_required(self, *, app: str, **kwargs: Any) -> bool:
        # allauth asks for the password before two-factor set-up even a minute
        # after the login; staff sent there from the admin would type it twice.
        # As for API keys (accounts/reauth.py), a login within
        # ACCOUNT_REAUTHENTICATION_TIMEOUT counts as recent.
        required = super().is_reauthentication_required(app=app, **kwargs)
        return required and (self.request is None or reauthentication_due(self.request))


def webauthn_rp_id(request: HttpRequest) -> str:
    """The WebAuthn relying party id: SITE_URL's host name when set, else the
    host the request came to.

    A security key or passkey belongs to one RP id for good. Pinning it to the
    public name means a key added while the portal was reached some other way
    (an internal name, a proxy's Host) fails at once, in the browser's origin
    check, instead of being saved and then never working on the public site.
    """
    if settings.SITE_URL:
        host = urlsplit(settings.SITE_URL).hostname
        if host:
            return host
    return request.get_host().partition(":")[0]


class PorticoMFAAdapter(DefaultMFAAdapter):
    def get_public_key_credential_rp_entity(self) -> dict[str, str]:
        return {"id": webauthn_rp_id(context.request), "name": settings.SITE_NAME}

    def build_totp_svg(self, url: str) -> str:
        # allauth's default SVG has a transparent background: on the dark theme
        # the black modules sit on a dark card and phones cannot read them.
        buffer = BytesIO()
        qrcode.make(url, image_factory=SvgPathFillImage).save(buffer)
        return buffer.getvalue().decode("utf8")
