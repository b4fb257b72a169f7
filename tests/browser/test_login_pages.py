"""The sign-in pages in a real browser."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import PASSWORD, user_make

pytestmark = pytest.mark.browser


def test_a_researcher_logs_in_sees_the_top_bar_and_logs_out(
    portal_server: Any, page: Any
) -> None:
    user_make(username="alice")
    page.goto(portal_server.url + "/")
    assert "/accounts/login/" in page.url
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(portal_server.url + "/")
    nav = page.locator("nav.topnav")
    assert nav.get_by_text("Chat").is_visible()
    assert nav.get_by_text("Admin").count() == 0
    stylesheet = page.evaluate(
        "getComputedStyle(document.querySelector('.topbar')).position"
    )
    assert stylesheet == "sticky", "static CSS is served by the app"
    nav.get_by_text("Log out").click()
    page.wait_for_url("**/accounts/login/")


def test_staff_see_the_admin_link(portal_server: Any, page: Any) -> None:
    user_make(username="op", is_staff=True, is_superuser=True)
    page.goto(portal_server.url + "/accounts/login/")
    page.fill("input[name=login]", "op")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.locator("nav.topnav").get_by_text("Admin").click()
    page.wait_for_url("**/admin/")
    assert "Portico" in page.title()
