"""The conversation list, exports, the phone drawer, following a stream and
the keyboard, in headless chromium against the real server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from chat.models import Conversation
from chat.services import conversation_reply_record, conversation_turn_start
from chat.tests.conftest import ChatBrowser, ChatRig

pytestmark = pytest.mark.browser


def _answered(rig: ChatRig, title: str, answer: str, days_ago: int = 0) -> Any:
    conversation = rig.conversation(title=title)
    asked = conversation_turn_start(
        conversation=conversation, action="send", content=f"About {title}?"
    )
    conversation_reply_record(
        conversation_id=conversation.pk,
        user_message_id=asked.pk,
        content=answer,
        model="fake-chat",
        finish_reason="stop",
        prompt_tokens=1,
        completion_tokens=1,
        request_id="r",
    )
    when = timezone.now() - timedelta(days=days_ago)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=when)
    return conversation


def test_the_list_is_grouped_searches_answers_and_lists_a_new_chat_at_once(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    _answered(rig, "Ants", "They follow pheromone trails.")
    _answered(rig, "Owls", "They hunt at night.", days_ago=3)
    _answered(rig, "Moles", "They dig.", days_ago=40)
    chat_browser.login(rig.alice)
    chat_browser.open()
    expect(page.locator(".conversation-group")).to_have_text(
        ["Today", "Last 7 days", "Older"]
    )
    page.keyboard.press("Control+k")
    expect(page.locator("#chat-search")).to_be_focused()
    page.keyboard.type("pheromone")
    expect(page.locator(".conversation-item")).to_have_count(1)
    assert page.inner_text(".conversation-item .conversation-link") == "Ants"
    page.fill("#chat-search", "")
    expect(page.locator(".conversation-item")).to_have_count(3)

    rig.backend.behaviour.tokens = 200
    rig.backend.behaviour.token_delay = 0.05
    page.focus("#prompt")
    chat_browser.send("Why do bees dance?")
    expect(page.locator(".conversation-item .conversation-link").first).to_have_text(
        "Why do bees dance?"
    )
    assert page.is_visible("#stop"), "listed while the first answer streams"
    expect(page.locator(".conversation-item.current")).to_have_count(1)
    # Stopped before its first token, the first turn would have no answer and
    # leave the list (conversation_list); stop once some text has arrived.
    expect(page.locator(".msg.assistant .msg-body .waiting")).to_have_count(0)
    expect(chat_browser.answer()).not_to_have_text("")
    page.click("#stop")
    chat_browser.wait_idle()
    expect(page.locator(".conversation-item")).to_have_count(4)


def test_a_conversation_exports_as_markdown_and_json_from_its_menu(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    ants = _answered(rig, "Ant navigation", "**Path integration.**")
    chat_browser.login(rig.alice)
    chat_browser.open()
    item = page.locator(f".conversation-item[data-id='{ants.pk}']")
    item.locator(".conversation-menu summary").click()
    link = item.locator("a[data-export=md]")
    expect(link).to_be_visible()
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == f"ant-navigation-{ants.pk}.md"
    text = open(download.path(), encoding="utf-8").read()
    assert text.startswith("# Ant navigation\n")
    assert "**Path integration.**" in text
    expect(link).to_be_hidden()  # the menu closes behind a download
    item.locator(".conversation-menu summary").click()
    expect(link).to_be_visible()
    page.keyboard.press("Escape")
    expect(link).to_be_hidden()
    href = item.locator("a[data-export=json]").get_attribute("href")
    exported = page.evaluate(
        """async (url) => {
          const response = await fetch(url, {credentials: "same-origin"});
          return [response.headers.get("content-disposition"), await response.json()];
        }""",
        href,
    )
    assert exported[0].startswith("attachment;")
    assert [m["content"] for m in exported[1]["messages"]] == [
        "About Ant navigation?",
        "**Path integration.**",
    ]


def test_on_a_phone_the_drawer_closes_with_esc_its_backdrop_and_its_button(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    _answered(rig, "Ants", "Trails.")
    page.set_viewport_size({"width": 390, "height": 844})
    chat_browser.login(rig.alice)
    chat_browser.open()
    sidebar = page.locator("#chat-sidebar")
    toggle = page.locator("#sidebar-toggle")
    expect(sidebar).not_to_be_in_viewport()

    toggle.click()
    expect(sidebar).to_be_in_viewport(ratio=0.9)
    expect(page.locator("#sidebar-backdrop")).to_be_visible()
    page.keyboard.press("Escape")
    expect(sidebar).not_to_be_in_viewport()
    expect(toggle).to_be_focused()
    expect(toggle).to_have_attribute("aria-expanded", "false")

    toggle.click()
    expect(sidebar).to_be_in_viewport(ratio=0.9)
    page.mouse.click(375, 500)  # the backdrop, right of the drawer
    expect(sidebar).not_to_be_in_viewport()
    expect(page.locator("#sidebar-backdrop")).to_be_hidden()

    toggle.click()
    page.click("#sidebar-close")
    expect(sidebar).not_to_be_in_viewport()
    expect(toggle).to_be_focused()


def test_scrolling_up_stops_following_and_esc_stops_the_answer(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    rig.backend.behaviour.text = "".join(f"Paragraph {n}.\n\n" for n in range(600))
    rig.backend.behaviour.token_delay = 0.02
    page.set_viewport_size({"width": 1000, "height": 600})
    chat_browser.login(rig.alice)
    chat_browser.open()
    expect(page.locator("#prompt")).to_be_focused()
    copy = page.locator(".msg.assistant [data-act=copy]")
    chat_browser.send("Count")
    expect(copy).to_be_hidden()  # nothing to copy yet
    page.wait_for_selector(".msg.assistant p:has-text('Paragraph 40.')")
    pane = page.locator("#messages")
    assert pane.evaluate("p => p.scrollHeight - p.scrollTop - p.clientHeight") < 60
    expect(page.locator("#jump-latest")).to_be_hidden()
    expect(pane).to_have_attribute("aria-live", "polite")
    expect(pane).to_have_attribute("aria-busy", "true")

    page.mouse.move(500, 300)
    page.mouse.wheel(0, -400)
    expect(page.locator("#jump-latest")).to_be_visible()
    held = pane.evaluate("p => p.scrollTop")
    page.wait_for_timeout(500)  # more paragraphs arrive meanwhile
    assert pane.evaluate("p => p.scrollTop") == held, "the reader stays put"

    page.click("#jump-latest")
    expect(page.locator("#jump-latest")).to_be_hidden()
    page.wait_for_timeout(300)
    assert pane.evaluate("p => p.scrollHeight - p.scrollTop - p.clientHeight") < 60

    page.keyboard.press("Escape")
    chat_browser.wait_idle()
    assert "Stopped" in page.inner_text(".msg.assistant .msg-meta")
    expect(pane).to_have_attribute("aria-busy", "false")
    expect(copy).to_be_visible()
    assert "Paragraph 599." not in page.inner_text(".msg.assistant .msg-body")
    chat_browser.assert_nothing_escaped()


def test_a_conversation_whose_first_turn_failed_leaves_the_list(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    _answered(rig, "Ants", "Trails.")
    rig.backend.behaviour.status = 500
    chat_browser.login(rig.alice)
    chat_browser.open()
    chat_browser.send("This will fail")
    chat_browser.wait_idle()
    expect(page.locator(".msg-error")).to_have_count(1)
    expect(page.locator(".conversation-item")).to_have_count(1)
    assert "This will fail" not in page.inner_text("#conversation-list")
    page.reload()
    page.wait_for_selector("#chat.ready")
    expect(page.locator(".conversation-item")).to_have_count(1)
