"""Every main page fits a phone and a laptop: no sideways scrolling of the
whole page, a top bar on one line, and Settings' tab strip on each settings
page with the current tab marked."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from chat.models import Message
from chat.services import conversation_create
from tests.factories import PASSWORD, model_make, usage_record_make, user_make

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}
PAGES = [
    ("/", None),
    ("/settings/account/", "account"),
    ("/settings/usage/", "usage"),
    ("/settings/access/", "access"),
    ("/settings/projects/", "projects"),
]


def _log_in(page: Any, url: str, username: str) -> None:
    page.goto(url + "/accounts/login/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")


def _busy_researcher() -> Any:
    """alice with wide things to show: long model names and many requests."""
    alice = user_make(username="alice", email="alice@example.org")
    now = timezone.now()
    for minutes, model in enumerate(
        ["org/a-rather-long-model-name-for-wide-tables-70b-instruct", "small"] * 4
    ):
        usage_record_make(
            user=alice, started_at=now - timedelta(minutes=minutes + 1), model=model
        )
    return alice


def _assert_fits(page: Any, path: str) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{path} is {widths[0]} px wide in {widths[1]}"
    spilling = page.evaluate(
        """[...document.querySelectorAll('.card, .settings > *')]
        .filter((el) => getComputedStyle(el).overflowX === 'visible'
                        && el.scrollWidth > el.clientWidth + 1)
        .map((el) => el.className + ' ' + (el.scrollWidth - el.clientWidth))"""
    )
    assert not spilling, f"on {path} these spill out of their box: {spilling}"
    centres = page.evaluate(
        """[...document.querySelectorAll('.topbar a, .topbar button')]
        .filter((el) => el.getClientRects().length)
        .map((el) => { const r = el.getBoundingClientRect();
                       return Math.round((r.top + r.bottom) / 2); })"""
    )
    assert max(centres) - min(centres) <= 4, f"the top bar of {path} wraps"


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["phone", "laptop"])
def test_every_main_page_fits_the_screen(
    portal_server: Any, page: Any, viewport: dict[str, int]
) -> None:
    _busy_researcher()
    page.set_viewport_size(viewport)
    _log_in(page, portal_server.url, "alice")
    for path, tab in PAGES:
        page.goto(portal_server.url + path)
        _assert_fits(page, path)
        if tab is None:
            continue
        strip = page.locator("nav.settings-tabs")
        assert strip.count() == 1, f"{path} has no tab strip"
        current = strip.locator("[aria-current=page]")
        assert current.count() == 1
        assert current.get_attribute("data-tab") == tab
        assert strip.locator("[data-tab=keys]").count() == 1


def test_the_settings_tabs_lead_from_page_to_page(
    portal_server: Any, page: Any
) -> None:
    _busy_researcher()
    page.set_viewport_size(PHONE)
    _log_in(page, portal_server.url, "alice")
    page.locator("nav.topnav").get_by_text("Settings").click()
    page.wait_for_url("**/settings/account/")
    page.locator("nav.settings-tabs").get_by_text("Usage").click()
    page.wait_for_url("**/settings/usage/")
    current = page.locator("nav.settings-tabs [aria-current=page]")
    assert current.inner_text().strip() == "Usage"


def test_it_takes_the_phone_screenshots(
    portal_server: Any, page: Any, tmp_path: Path
) -> None:
    """Into docs/screenshots/ with PORTICO_UPDATE_SCREENSHOTS=1, as the chat's
    desktop screenshots are; otherwise into a temporary folder."""
    alice = _busy_researcher()
    model_make(public_id="fake-chat")
    conversation = conversation_create(
        user=alice, title="How do ants find home?", model="fake-chat"
    )
    Message.objects.create(
        conversation=conversation,
        role="user",
        content="How do desert ants find their way home?",
    )
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        model="fake-chat",
        content="They keep a running sum of every step (*path integration*) "
        "and steer by the sun, so the way home is one vector.",
    )
    page.set_viewport_size(PHONE)
    _log_in(page, portal_server.url, "alice")
    folder = SCREENSHOTS if os.environ.get("PORTICO_UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in (
        ("chat-phone", f"/chat/{conversation.pk}/"),
        ("usage-phone", "/settings/usage/"),
    ):
        page.goto(portal_server.url + path)
        page.wait_for_load_state("networkidle")
        shot = folder / f"{name}.png"
        page.screenshot(path=str(shot))
        assert shot.read_bytes().startswith(b"\x89PNG")


def test_enter_types_a_line_break_on_a_touch_keyboard(
    portal_server: Any, chromium: Any
) -> None:
    _busy_researcher()
    model_make(public_id="fake-chat")
    context = chromium.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    try:
        page = context.new_page()
        _log_in(page, portal_server.url, "alice")
        assert page.evaluate("matchMedia('(pointer: coarse)').matches")
        page.wait_for_selector("#prompt:enabled")
        page.fill("#prompt", "first line")
        page.press("#prompt", "Enter")
        page.type("#prompt", "second line")
        assert page.input_value("#prompt") == "first line\nsecond line"
        assert page.locator(".msg.user").count() == 0
    finally:
        context.close()
