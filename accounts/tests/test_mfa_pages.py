"""allauth's two-factor pages inside Portico: reachable from Settings > Account,
in the site's layout, loadable under the strict CSP, WebAuthn tied to SITE_URL."""

from __future__ import annotations

import base64
import json
import re

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.test import Client

from accounts.models import User
from accounts.tests.conftest import login
from portal.csp import SIGN_IN_POLICY

pytestmark = pytest.mark.django_db

MFA_PAGES = [
    "/accounts/2fa/",
    "/accounts/2fa/totp/activate/",
    "/accounts/2fa/webauthn/add/",
    "/accounts/2fa/recovery-codes/generate/",
]


def assert_runs_under_the_policy(response) -> None:  # type: ignore[no-untyped-def]
    """No code the policy would block: every script is a static file or a JSON
    data block (which browsers never execute), and no inline styles."""
    assert response["Content-Security-Policy"] == SIGN_IN_POLICY
    page = response.content.decode()
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert 'src="/static/' in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\sstyle=|<style\b|\son[a-z]+=", page)


def test_settings_account_links_to_two_factor_authentication(
    alice_client: Client,
) -> None:
    page = alice_client.get("/settings/account/").content.decode()
    assert "Two-factor authentication" in page
    assert 'href="/accounts/2fa/"' in page
    assert "Staff need it" not in page


def test_staff_are_told_they_need_it_when_it_is_required(
    client: Client, staff: User, settings
) -> None:
    settings.REQUIRE_STAFF_MFA = True
    login(client, staff)
    assert (
        "Staff need it to use the admin"
        in client.get("/settings/account/").content.decode()
    )


@pytest.mark.parametrize("path", MFA_PAGES)
def test_the_two_factor_pages_use_the_site_layout_and_the_policy(
    alice_client: Client, path: str
) -> None:
    response = alice_client.get(path)
    assert response.status_code == 200, (path, response.get("Location"))
    assert_runs_under_the_policy(response)
    page = response.content.decode()
    assert 'class="topbar"' in page and 'data-nav="settings"' in page


def test_the_login_page_with_passkeys_runs_under_the_policy(client: Client) -> None:
    response = client.get("/accounts/login/?next=/admin/")
    assert_runs_under_the_policy(response)
    page = response.content.decode()
    # The passkey button and the form and scripts it needs (allauth puts them
    # in `extra_body`, which the site layout must keep).
    assert 'id="passkey_login"' in page
    assert 'id="mfa_login"' in page and "mfa/js/webauthn.js" in page


def test_pages_that_add_scripts_below_the_content_keep_them(
    alice_client: Client, alice: User
) -> None:
    """allauth's `extra_body` block sits outside `content` in the site layout."""
    Authenticator.objects.create(
        user=alice, type=Authenticator.Type.TOTP, data={"secret": "A" * 32}
    )
    RecoveryCodes.activate(alice)
    for path, script in [
        ("/accounts/email/", "account/js/account.js"),
        ("/accounts/2fa/recovery-codes/", "mfa/js/recovery_codes.js"),
    ]:
        response = alice_client.get(path)
        assert response.status_code == 200, path
        assert_runs_under_the_policy(response)
        assert f'src="/static/{script}"' in response.content.decode(), path


def test_the_qr_code_has_a_white_background_for_the_dark_theme(
    alice_client: Client,
) -> None:
    page = alice_client.get("/accounts/2fa/totp/activate/").content.decode()
    data = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', page).group(1)
    svg = base64.b64decode(data).decode()
    assert '<rect fill="white"' in svg


def _webauthn_rp(client: Client, **extra: str) -> dict:
    page = client.get("/accounts/2fa/webauthn/add/", **extra).content.decode()
    data = re.search(
        r'<script id="js_data" type="application/json">(.+?)</script>', page
    ).group(1)
    return json.loads(data)["creation_options"]["publicKey"]["rp"]


def test_webauthn_keys_belong_to_the_host_of_site_url(
    alice_client: Client, settings
) -> None:
    settings.SITE_URL = "https://llm.example.edu"
    settings.SITE_NAME = "Uni LLM"
    settings.ALLOWED_HOSTS = ["internal.example.edu"]
    rp = _webauthn_rp(alice_client, HTTP_HOST="internal.example.edu")
    assert rp == {"id": "llm.example.edu", "name": "Uni LLM"}


def test_without_site_url_webauthn_uses_the_request_host(
    alice_client: Client, settings
) -> None:
    settings.SITE_URL = ""
    settings.ALLOWED_HOSTS = ["localhost"]
    rp = _webauthn_rp(alice_client, HTTP_HOST="localhost:8000")
    assert rp["id"] == "localhost"
