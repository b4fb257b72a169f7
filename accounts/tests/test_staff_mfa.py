"""Two-factor authentication for staff (REQUIRE_STAFF_MFA) and anyone who
wants it, through allauth.mfa, with real TOTP codes."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from django.test import Client
from django.utils import timezone

from accounts.middleware import SET_UP_MESSAGE
from accounts.models import User
from accounts.selectors import user_has_mfa
from accounts.tests.otp import totp_code
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

ACTIVATE = "/accounts/2fa/totp/activate/"
AUTHENTICATE = "/accounts/2fa/authenticate/"


@pytest.fixture
def require_staff_mfa(settings) -> None:  # type: ignore[no-untyped-def]
    settings.REQUIRE_STAFF_MFA = True


def password_login(client: Client, user: User, *, next_url: str = "/admin/") -> str:
    """Log in through the allauth form the admin login sends staff to; returns
    where the form sends them next."""
    response = client.post(
        f"/accounts/login/?next={next_url}",
        {"login": user.get_username(), "password": PASSWORD},
    )
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def totp_activate(client: Client) -> str:
    """Activate an authenticator app the way a person does: read the secret off
    the set-up page, type the code the app shows. Returns the secret."""
    page = client.get(ACTIVATE)
    assert page.status_code == 200
    match = re.search(
        r'id="authenticator_secret"[^>]*value="([A-Z2-7]+)"|'
        r'value="([A-Z2-7]+)"[^>]*id="authenticator_secret"',
        page.content.decode(),
    )
    assert match, page.content.decode()[:3000]
    secret = match.group(1) or match.group(2)
    response = client.post(ACTIVATE, {"code": totp_code(secret)})
    assert response.status_code == 302, response.content.decode()[:3000]
    return secret


def test_the_code_helper_matches_rfc_6238() -> None:
    # RFC 6238 appendix B, SHA1, T = 59 s: 94287082 (8 digits).
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp_code(secret, at=59, digits=8) == "94287082"


def test_staff_without_mfa_are_sent_from_the_admin_to_set_it_up(
    client: Client, staff: User, require_staff_mfa: None
) -> None:
    assert password_login(client, staff) == "/admin/"
    for path in ["/admin/", "/admin/accounts/user/", "/admin/dashboard/"]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == ACTIVATE
    page = client.get(ACTIVATE)
    assert page.status_code == 200, "a fresh login needs no second password"
    assert SET_UP_MESSAGE in page.content.decode()
    assert 'src="data:image/svg+xml;base64,' in page.content.decode()
    # The rest of the site stays open, and so does logging out of the admin.
    assert client.get("/settings/account/").status_code == 200
    assert client.post("/admin/logout/").status_code == 200


def test_after_activating_totp_staff_pass_the_code_step_to_reach_the_admin(
    client: Client, staff: User, require_staff_mfa: None
) -> None:
    password_login(client, staff)
    secret = totp_activate(client)
    assert user_has_mfa(user=staff)
    assert client.get("/admin/").status_code == 200

    client.post("/accounts/logout/")
    later = timezone.now() + timedelta(seconds=31)
    with time_machine.travel(later, tick=False):
        fresh = Client()
        # The password alone does not sign in: allauth asks for the code first.
        assert password_login(fresh, staff) == AUTHENTICATE
        assert fresh.get("/admin/").status_code == 302
        assert fresh.get("/admin/")["Location"].startswith("/admin/login/")
        wrong = fresh.post(AUTHENTICATE, {"code": "000000"})
        assert wrong.status_code == 200 and "Incorrect code" in wrong.content.decode()
        response = fresh.post(AUTHENTICATE, {"code": totp_code(secret)})
        assert response.status_code == 302
        assert response["Location"] == "/admin/"
        assert fresh.get("/admin/").status_code == 200
        assert fresh.get("/admin/accounts/user/").status_code == 200


def test_with_the_setting_off_staff_reach_the_admin_without_mfa(
    client: Client, staff: User, settings
) -> None:
    settings.REQUIRE_STAFF_MFA = False
    assert password_login(client, staff) == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/accounts/user/").status_code == 200
    assert not Authenticator.objects.exists()


def test_researchers_are_never_forced(
    client: Client, alice: User, require_staff_mfa: None
) -> None:
    assert password_login(client, alice, next_url="/") == "/"
    assert client.get("/").status_code == 200
    assert client.get("/settings/account/").status_code == 200
    # The admin stays closed to them, but never by sending them to set up MFA.
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_researcher_may_turn_on_totp_and_is_then_asked_for_codes(
    client: Client, alice: User
) -> None:
    password_login(client, alice, next_url="/")
    page = client.get("/settings/account/").content.decode()
    assert 'data-mfa="off"' in page and 'href="/accounts/2fa/"' in page
    secret = totp_activate(client)
    assert 'data-mfa="on"' in client.get("/settings/account/").content.decode()

    client.post("/accounts/logout/")
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        assert password_login(client, alice, next_url="/") == AUTHENTICATE
        response = client.post(AUTHENTICATE, {"code": totp_code(secret)})
        assert response["Location"] == "/"


def test_recovery_codes_alone_do_not_count(alice: User) -> None:
    Authenticator.objects.create(
        user=alice, type=Authenticator.Type.RECOVERY_CODES, data={"seed": "00"}
    )
    assert not user_has_mfa(user=alice)
    Authenticator.objects.create(
        user=alice, type=Authenticator.Type.TOTP, data={"secret": "A" * 32}
    )
    assert user_has_mfa(user=alice)


def test_a_stale_login_must_give_the_password_before_mfa_set_up(
    client: Client, staff: User, require_staff_mfa: None, settings
) -> None:
    password_login(client, staff)
    later = timezone.now() + timedelta(
        seconds=settings.ACCOUNT_REAUTHENTICATION_TIMEOUT + 5
    )
    with time_machine.travel(later):
        response = client.get(ACTIVATE)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/reauthenticate/")
