"""The pages in the researcher's language: the browser's (Accept-Language), or
the one chosen in Settings > Account, kept in the session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from chat.tests.conftest import ChatBrowser, ChatRig

pytestmark = pytest.mark.browser


@pytest.fixture
def hungarian_browser(chat: ChatRig, chromium: Any) -> Iterator[ChatBrowser]:
    """A chromium whose user speaks Hungarian (Accept-Language: hu-HU)."""
    context = chromium.new_context(locale="hu-HU")
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    browser = ChatBrowser(rig=chat, page=page)
    page.on(
        "console",
        lambda message: (
            browser.csp_errors.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    yield browser
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_a_hungarian_browser_gets_the_chat_in_hungarian_and_a_turn_works(
    hungarian_browser: ChatBrowser,
) -> None:
    rig, page = hungarian_browser.rig, hungarian_browser.page
    hungarian_browser.login(rig.alice)
    hungarian_browser.open()
    assert page.get_attribute("html", "lang") == "hu"
    expect(page.locator("#send")).to_have_text("Küldés")
    expect(page.locator("#new-chat")).to_contain_text("Új csevegés")
    expect(page.locator("#chat-empty h1")).to_have_text("Min dolgozik?")
    expect(page.locator(".topnav [data-nav=settings]")).to_have_text("Beállítások")
    assert page.get_attribute("#prompt", "aria-label") == "Üzenet"

    hungarian_browser.send("Szia!")
    hungarian_browser.wait_idle()
    assert hungarian_browser.answer().inner_text().strip()
    assert not hungarian_browser.csp_errors, hungarian_browser.csp_errors


def test_choosing_eesti_in_settings_turns_the_pages_estonian_for_the_session(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    chat_browser.login(rig.alice)
    page.goto(rig.url + "/settings/account/")
    expect(page.locator("h1")).to_have_text("Account")
    page.select_option("#language-select", "et")
    page.click("[data-testid=set-language]")
    page.wait_for_url(rig.url + "/settings/account/")
    expect(page.locator("h1")).to_have_text("Konto")
    assert page.get_attribute("html", "lang") == "et"
    expect(page.locator("#language-select")).to_have_value("et")
    expect(page.locator(".settings-tabs [data-tab=usage]")).to_have_text("Kasutus")

    chat_browser.open()
    expect(page.locator("#send")).to_have_text("Saada")
    expect(page.locator(".topnav [data-nav=chat]")).to_have_text("Vestlus")
    chat_browser.assert_nothing_escaped()
