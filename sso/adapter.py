"""allauth's socialaccount adapter, Portico's way.

- First sign-ins follow REGISTRATION_MODE (open, approval, closed), whatever
  LOCAL_LOGIN says about passwords.
- An SSO login joins an existing account by e-mail only when the provider
  asserts the address verified *and* the account has verified it too; anything
  else makes a new account (or asks), never a takeover.
- Every IdP of an imported federation shares one organization slug, hence one
  ACS URL and one SP metadata URL; the IdP a login belongs to is the one this
  browser chose (`SESSION_CHOSEN_PROVIDER`).
"""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp
from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import render

from accounts.models import User
from accounts.services import user_mark_pending

SESSION_CHOSEN_PROVIDER = "sso_chosen_provider"


def federation_app(app: Any) -> bool:
    return bool((app.settings or {}).get("federation"))


class PorticoSocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: Any) -> bool:
        return settings.REGISTRATION_MODE != "closed"

    def save_user(
        self, request: HttpRequest, sociallogin: Any, form: Any = None
    ) -> User:
        user = super().save_user(request, sociallogin, form)
        if settings.REGISTRATION_MODE == "approval":
            user_mark_pending(user=user)
            user.save(update_fields=["is_active", "pending_approval"])
        return user

    def authenticate_by_email(self, sociallogin: Any) -> tuple[User, str] | None:
        for address in sociallogin.email_addresses:
            if not address.verified:
                continue
            if not self.can_authenticate_by_email(sociallogin, address.email):
                continue
            owners = list(
                EmailAddress.objects.filter(
                    email__iexact=address.email, verified=True, user__is_active=True
                ).select_related("user")[:2]
            )
            # Two accounts with one verified address cannot happen with
            # ACCOUNT_UNIQUE_EMAIL; if it ever does, link neither.
            if len(owners) == 1:
                return owners[0].user, address.email
        return None

    def pre_social_login(self, request: HttpRequest, sociallogin: Any) -> None:
        """A first sign-in whose address an existing account already holds,
        unlinked (not verified on both sides): refuse it on a page that says
        why and what to do, instead of allauth's "we sent you an e-mail"."""
        if sociallogin.is_existing or request.user.is_authenticated:
            return
        taken = [
            a.email
            for a in sociallogin.email_addresses
            if EmailAddress.objects.filter(email__iexact=a.email).exists()
            or User.objects.filter(email__iexact=a.email).exists()
        ]
        if taken:
            raise ImmediateHttpResponse(
                render(
                    request,
                    "sso/address_in_use.html",
                    {"provider": sociallogin.provider.name},
                    status=409,
                )
            )

    def list_providers(self, request: HttpRequest) -> list[Any]:
        # A federation brings thousands of IdPs: "Choose your institution"
        # searches them; pages that list every provider skip them.
        return [
            provider
            for provider in super().list_providers(request)
            if provider.app is None or not federation_app(provider.app)
        ]

    def get_app(
        self, request: HttpRequest, provider: str, client_id: Any = None
    ) -> Any:
        if provider == "saml" and client_id is not None:
            chosen = self._chosen_saml_app(request, client_id)
            if chosen is not None:
                return chosen
        return super().get_app(request, provider, client_id=client_id)

    def _chosen_saml_app(self, request: HttpRequest | None, client_id: str) -> Any:
        apps = SocialApp.objects.filter(provider="saml", client_id=client_id)
        chosen = None
        if request is not None and hasattr(request, "session"):
            chosen = request.session.get(SESSION_CHOSEN_PROVIDER)
        if chosen:
            app = apps.filter(provider_id=chosen).first()
            if app is not None:
                return app
        # No choice in this session (the SP metadata page, or a response the
        # browser never asked for): any app of the slug describes the SP;
        # a response is then checked against it and fails, as it should.
        if apps.count() > 1:
            return apps.order_by("pk").first()
        return None
