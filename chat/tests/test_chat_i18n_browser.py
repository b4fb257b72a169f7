"""The pages in the researcher's language: the browser's (Accept-Language), or
the one chosen in Settings > Account, kept in the session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import expect

from chat.tests.conftest import ChatBrowser, ChatRig

pytestmark = pytest.mark.browser


@contextmanager
def browser_speaking(
    locale: str, chat: ChatRig, chromium: Any
) -> Iterator[ChatBrowser]:
    """A chromium whose user's browser asks for `locale` (Accept-Language),
    closed once the live server has finished what the page started."""
    context = chromium.new_context(locale=locale)
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
    page.close()
    chat.proxy.server.wait_quiet()
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def hungarian_browser(chat: ChatRig, chromium: Any) -> Iterator[ChatBrowser]:
    with browser_speaking("hu-HU", chat, chromium) as browser:
        yield browser


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


# What a researcher sees first in each language: the pages' own strings and
# the chat scripts' (Django's JavaScriptCatalog at /jsi18n/).
SEEN = {
    "hu-HU": {
        "usage": "Használat",
        "recent": "Legutóbbi kérések",
        "access": "Hozzáférés",
        "limits": "Jelenlegi korlátai",
        "revoke": "Kulcs visszavonása",
        "today": "Ma",
        "copy": "Másolás",
        "regenerate": "Újragenerálás",
        "more": "Továbbiak",
    },
    "de-DE": {
        "usage": "Nutzung",
        "recent": "Letzte Anfragen",
        "access": "Zugang",
        "limits": "Ihre aktuellen Grenzen",
        "revoke": "Schlüssel widerrufen",
        "today": "Heute",
        "copy": "Kopieren",
        "regenerate": "Neu erzeugen",
        "more": "Mehr",
    },
}


@pytest.fixture(params=sorted(SEEN))
def speaking_browser(
    request: Any, chat: ChatRig, chromium: Any
) -> Iterator[tuple[ChatBrowser, dict[str, str]]]:
    """A chromium whose user's browser asks for Hungarian, then German."""
    with browser_speaking(request.param, chat, chromium) as browser:
        yield browser, SEEN[request.param]


def test_settings_a_key_page_and_the_chat_scripts_speak_the_browser_language(
    speaking_browser: tuple[ChatBrowser, dict[str, str]],
) -> None:
    from accounts.models import ApiKey
    from chat.services import conversation_reply_record, conversation_turn_start

    browser, seen = speaking_browser
    rig, page = browser.rig, browser.page
    conversation = rig.conversation(title="Ants")
    asked = conversation_turn_start(
        conversation=conversation, action="send", content="Ants?"
    )
    conversation_reply_record(
        conversation_id=conversation.pk,
        user_message_id=asked.pk,
        content="They follow trails.",
        model="fake-chat",
        finish_reason="stop",
        prompt_tokens=1,
        completion_tokens=1,
        request_id="r",
    )
    key = ApiKey.objects.filter(user=rig.alice).first()
    assert key is not None
    browser.login(rig.alice)

    page.goto(rig.url + "/settings/usage/")
    expect(page.locator("h1")).to_have_text(seen["usage"])
    expect(page.locator("#recent-title")).to_have_text(seen["recent"])

    page.goto(rig.url + "/settings/access/")
    expect(page.locator("h1")).to_have_text(seen["access"])
    expect(page.locator("#standing-title")).to_have_text(seen["limits"])

    page.goto(rig.url + f"/settings/account/keys/{key.pk}/revoke/")
    expect(page.locator("button.danger")).to_have_text(seen["revoke"])

    # Drawn by the chat's scripts, so translated through /jsi18n/.
    browser.open(f"/chat/{conversation.pk}/")
    expect(page.locator(".conversation-group").first).to_have_text(seen["today"])
    meta = page.locator(".msg.assistant .msg-meta")
    expect(meta.locator("[data-act=copy]")).to_have_text(seen["copy"])
    expect(meta.locator("[data-act=regenerate]")).to_have_text(seen["regenerate"])
    summary = page.locator(".conversation-item .conversation-menu summary").first
    assert summary.get_attribute("title") == seen["more"]
    browser.assert_nothing_escaped()
