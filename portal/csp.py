"""A strict Content-Security-Policy on every page Django serves.

Django 5.2 has no CSP support of its own, and the policy is one fixed string,
so a few lines here replace a dependency. Scripts, styles, fonts and fetches
may come from this origin only: no inline code, no `eval`, no CDN. Pages keep
their JavaScript in static files and their styles in stylesheets; the admin's
and allauth's own templates already do.

Images also allow `data:` (the chat shows attachments it has read locally) and
`blob:`. Model output is sanitised before it reaches the page; this policy is
the second wall, not the first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

DIRECTIVES = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "media-src 'self'",
    "object-src 'none'",
    "frame-src 'none'",
    "worker-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
]
POLICY = "; ".join(DIRECTIVES)
# Sign-in pages post forms that the portal answers with a redirect to an
# identity provider (OpenID Connect, SAML), and browsers hold that redirect to
# `form-action` too: there it may lead to any https origin, and to loopback
# (a provider on the same machine: SSO_DEMO, tests).
SIGN_IN_POLICY = "; ".join(
    "form-action 'self' https: http://127.0.0.1:* http://localhost:*"
    if d.startswith("form-action")
    else d
    for d in DIRECTIVES
)
SIGN_IN_PATH = "/accounts/"


def policy_for_path(path: str) -> str:
    return SIGN_IN_POLICY if path.startswith(SIGN_IN_PATH) else POLICY


HEADER = "Content-Security-Policy"


def _policy_add(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    # With DEBUG on, Django's technical error pages (tracebacks, the 404 URL
    # list, the CSRF explanation) are built with inline styles and scripts;
    # they stay readable. Production (DEBUG off) renders plain error templates.
    if settings.DEBUG and response.status_code >= 400:
        return response
    if HEADER not in response:
        response[HEADER] = policy_for_path(request.path)
    return response


class ContentSecurityPolicyMiddleware:
    """Adds POLICY to every response (sync and async, no thread hop)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[..., object]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> object:
        if self.is_async:
            return self._acall(request)
        return _policy_add(request, self.get_response(request))  # type: ignore[arg-type]

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]
        get_response = self.get_response  # type: ignore[assignment]
        return _policy_add(request, await get_response(request))
