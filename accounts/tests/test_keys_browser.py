"""Creating a key in headless chromium: the key is shown once, a reload of
that page neither shows it again nor makes a second key, and the expiry shows
the day that was picked."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from tests.factories import PASSWORD, user_make
from tests.fixtures_browser import ThreadedUvicorn

pytestmark = pytest.mark.browser


def test_a_reload_after_creating_a_key_makes_no_second_key(
    portal_server: ThreadedUvicorn, page: Any
) -> None:
    user_make(username="alice")
    base = portal_server.url
    page.goto(base + "/accounts/login/?next=/settings/account/")
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url("**/settings/account/")
    day = (timezone.localdate() + timedelta(days=12)).isoformat()
    page.fill("input[name=name]", "notebook")
    page.fill("input[name=expires_on]", day)
    page.click("form.key-form button[type=submit]")
    page.wait_for_url("**/settings/account/keys/new/")
    raw = page.text_content("#new-key").strip()
    assert raw.startswith("sk-")
    assert f"{day} 23:59" in page.text_content(".key-facts")

    page.reload()
    page.wait_for_url("**/settings/account/")
    assert page.locator("#new-key").count() == 0
    assert raw not in page.content()
    assert ApiKey.objects.filter(user__username="alice").count() == 1
    row = page.locator(".key-row").first
    assert "notebook" in row.text_content()
    assert f"{day} 23:59" in row.text_content()
