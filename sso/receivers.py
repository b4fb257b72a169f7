"""allauth's sign-in signals, handed to the one service that acts on them."""

from __future__ import annotations

from typing import Any

from allauth.account.signals import user_logged_in
from allauth.socialaccount.signals import social_account_added
from django.dispatch import receiver

from sso.services import sso_login_record


@receiver(user_logged_in, dispatch_uid="sso_login_record")
def _sso_login_recorded(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    sociallogin = kwargs.get("sociallogin")
    if sociallogin is not None:
        sso_login_record(user=user, sociallogin=sociallogin)


@receiver(social_account_added, dispatch_uid="sso_connect_record")
def _sso_connect_recorded(
    sender: Any, request: Any, sociallogin: Any, **kwargs: Any
) -> None:
    # Connecting a provider to a signed-in account is a sign-in through it.
    if sociallogin.state.get("process") == "connect":
        sso_login_record(user=sociallogin.user, sociallogin=sociallogin)
