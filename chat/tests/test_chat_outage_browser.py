"""An outage is not a lack of access: with models granted but none able to
answer, the chat says the models are unavailable and Send looks disabled."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from catalog.models import Backend, Deployment, Model
from chat.tests.conftest import ChatBrowser

pytestmark = pytest.mark.browser


def _assert_composer_shut(chat_browser: ChatBrowser) -> None:
    page = chat_browser.page
    expect(page.locator("#send")).to_be_disabled()
    expect(page.locator("#prompt")).to_be_disabled()
    opacity = page.eval_on_selector("#send", "e => getComputedStyle(e).opacity")
    assert float(opacity) < 0.6, "a disabled Send must look disabled"


def test_a_backend_down_reads_as_an_outage_with_send_visibly_disabled(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    Backend.objects.filter(name="fake").update(healthy=False)
    chat_browser.login(rig.alice)
    chat_browser.open()
    expect(page.locator("#chat-empty h1")).to_have_text(
        "The models are unavailable right now"
    )
    expect(page.locator("#chat-empty")).not_to_contain_text("ask for access")
    expect(page.locator("#outage-notice")).to_be_visible()
    _assert_composer_shut(chat_browser)
    chat_browser.assert_nothing_escaped()


def test_models_no_longer_served_read_as_an_outage_too(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    Deployment.objects.update(served=False)
    chat_browser.login(rig.alice)
    chat_browser.open()
    expect(page.locator("#chat-empty h1")).to_have_text(
        "The models are unavailable right now"
    )
    _assert_composer_shut(chat_browser)


def test_without_any_model_granted_the_page_says_to_ask_for_access(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    Model.objects.update(everyone=False)
    chat_browser.login(rig.alice)
    chat_browser.open()
    expect(page.locator("#chat-empty h1")).to_have_text("No models yet")
    expect(page.locator("#outage-notice")).to_have_count(0)
    _assert_composer_shut(chat_browser)


def test_a_healthy_model_leaves_the_composer_open(chat_browser: ChatBrowser) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    chat_browser.login(rig.alice)
    chat_browser.open()
    expect(page.locator("#chat-empty h1")).to_have_text("What are you working on?")
    expect(page.locator("#send")).to_be_enabled()
    assert (
        float(page.eval_on_selector("#send", "e => getComputedStyle(e).opacity")) == 1
    )
