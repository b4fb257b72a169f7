"""Security keys in headless chromium, under the site's strict CSP: allauth's
WebAuthn pages run their scripts from static files, and a virtual
authenticator (Chrome DevTools' WebAuthn domain) stands in for the key."""

from __future__ import annotations

from typing import Any

import pytest
from allauth.mfa.models import Authenticator

from tests.factories import PASSWORD, user_make

pytestmark = pytest.mark.browser


def _watch_console(page: Any) -> list[str]:
    """Console errors (a CSP refusal or a failed WebAuthn call lands here) and
    failed requests. The site has no favicon; the browser's own request for it
    is no fault."""
    errors: list[str] = []

    def _console(message: Any) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    def _response(response: Any) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            errors.append(f"{response.status} {response.url}")

    page.on("console", _console)
    page.on("response", _response)
    return errors


def _virtual_security_key(page: Any) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )


def _password_login(page: Any, base: str) -> None:
    page.goto(base + "/admin/")
    page.wait_for_url("**/accounts/login/?next=%2Fadmin%2F")
    page.fill("input[name=login]", "op")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")


def _log_out(page: Any, base: str) -> None:
    page.goto(base + "/")
    page.locator("nav.topnav").get_by_text("Log out").click()
    page.wait_for_url("**/accounts/login/")


def test_staff_add_a_security_key_and_sign_in_with_it(
    portal_server: Any, page: Any, settings: Any
) -> None:
    settings.REQUIRE_STAFF_MFA = True
    staff = user_make(username="op", is_staff=True, is_superuser=True)
    # WebAuthn refuses IP addresses as relying parties; localhost is a secure
    # context over plain http.
    base = f"http://localhost:{portal_server.port}"
    errors = _watch_console(page)
    _virtual_security_key(page)

    _password_login(page, base)
    page.wait_for_url("**/accounts/2fa/totp/activate/")
    assert "Set up two-factor authentication" in page.inner_text(".messages")

    page.goto(base + "/accounts/2fa/webauthn/add/")
    page.fill("input[name=name]", "laptop")
    page.check("input[name=passwordless]")
    page.click("#mfa_webauthn_add")
    page.wait_for_url("**/accounts/2fa/recovery-codes/")
    key = Authenticator.objects.get(user=staff, type=Authenticator.Type.WEBAUTHN)
    assert key.wrap().name == "laptop"
    page.goto(base + "/admin/")
    assert page.url == base + "/admin/"
    assert "Portico" in page.title()

    # Password, then the key as the second step.
    _log_out(page, base)
    _password_login(page, base)
    page.wait_for_url("**/accounts/2fa/authenticate/")
    page.click("#mfa_webauthn_authenticate")
    page.wait_for_url(base + "/admin/")

    # The key alone, as a passkey.
    _log_out(page, base)
    page.goto(base + "/admin/")
    page.wait_for_url("**/accounts/login/?next=%2Fadmin%2F")
    page.click("#passkey_login")
    page.wait_for_url(base + "/admin/")
    assert not errors, errors
