"""allauth's login signal, handed to the one service that acts on it."""

from __future__ import annotations

from typing import Any

from allauth.account.signals import user_logged_in
from django.dispatch import receiver

from sso.services import sso_login_record


@receiver(user_logged_in, dispatch_uid="sso_login_record")
def _sso_login_recorded(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    sociallogin = kwargs.get("sociallogin")
    if sociallogin is not None:
        sso_login_record(user=user, sociallogin=sociallogin)
