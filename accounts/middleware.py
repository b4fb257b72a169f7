"""REQUIRE_STAFF_MFA: the admin only for staff who have a second factor.

The admin login already goes through allauth (portal/admin.py), so a staff
user with an authenticator passes allauth's two-factor step on the way in.
This closes the other gap: a staff account that never set one up, whose
password alone would still open every admin page.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from accounts.selectors import user_has_mfa

SET_UP_MESSAGE = (
    "Set up two-factor authentication to use the admin: add an authenticator "
    "app here, or a security key under Two-factor authentication."
)


def staff_mfa_missing(request: HttpRequest) -> bool:
    """Whether this request is for an admin page by staff without a second
    factor, while REQUIRE_STAFF_MFA is on. Logging out stays open."""
    if not settings.REQUIRE_STAFF_MFA:
        return False
    admin_root = reverse("admin:index")
    if not request.path.startswith(admin_root):
        return False
    if request.path == reverse("admin:logout"):
        return False
    user = request.user
    if not (user.is_authenticated and user.is_staff):
        return False
    return not user_has_mfa(user=user)  # type: ignore[arg-type]


class StaffMFARequiredMiddleware:
    """Sends staff without MFA from any /admin/ page to allauth's set-up page.

    Sync only, as the auditlog middleware already is: under ASGI the page
    chain already crosses into a worker thread there, so this adds no hop. The
    API doors (portal/asgi.py) never pass through MIDDLEWARE.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if staff_mfa_missing(request):
            messages.warning(request, SET_UP_MESSAGE)
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        return self.get_response(request)
