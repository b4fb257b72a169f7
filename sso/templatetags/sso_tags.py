from typing import Any

from django import template
from django.conf import settings

from sso.selectors import SignInOptions, sign_in_options, sso_profile

register = template.Library()


@register.simple_tag
def sso_sign_in_options() -> SignInOptions:
    return sign_in_options()


@register.simple_tag
def local_login_mode() -> str:
    return settings.LOCAL_LOGIN


@register.simple_tag
def sso_sign_in_profile(user: Any) -> dict[str, Any]:
    linked, groups = sso_profile(user=user)
    return {
        "linked": linked,
        "groups": groups,
        "revalidate_days": settings.SSO_REVALIDATE_DAYS,
    }
