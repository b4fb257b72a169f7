"""The chat in headless chromium against the real server and the fake backend."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.core import mail
from playwright.sync_api import expect

from catalog.models import UserLimits
from chat.models import Conversation, Message
from chat.services import conversation_create
from chat.tests.conftest import ChatBrowser
from tests.factories import PASSWORD

pytestmark = pytest.mark.browser

PNG_BYTES = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f00f0004850180848a8c21"
    "0000000049454e44ae426082"
)


def _wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_a_researcher_signs_up_picks_a_model_and_watches_the_answer_stream(
    chat_browser: ChatBrowser, settings: Any
) -> None:
    settings.REGISTRATION_MODE = "open"
    rig, page = chat_browser.rig, chat_browser.page
    rig.backend.behaviour.tokens = 40
    rig.backend.behaviour.token_delay = 0.04
    page.goto(rig.url + "/accounts/signup/")
    page.fill("input[name=email]", "dora@example.org")
    page.fill("input[name=username]", "dora")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("form button[type=submit]")
    link = _wait_for(
        lambda: (
            mail.outbox
            and re.search(
                r"https?://\S+/accounts/confirm-email/\S+", mail.outbox[-1].body
            )
        )
    )
    page.goto(rig.url + "/" + link.group(0).split("/", 3)[3])
    page.click("form button[type=submit]")
    page.wait_for_url(rig.url + "/")
    page.wait_for_selector("#chat.ready")
    page.select_option("#model-picker", "fake-chat")
    assert "8,192-token context" in page.inner_text("#model-info")

    page.fill("#prompt", "First line")
    page.press("#prompt", "Shift+Enter")
    page.type("#prompt", "second line")
    assert page.input_value("#prompt") == "First line\nsecond line"
    chat_browser.mark()
    page.press("#prompt", "Enter")
    page.wait_for_selector(".msg.assistant .msg-body p:has-text('tok3')")
    partial = chat_browser.answer().inner_text()
    assert page.is_visible("#stop"), "still streaming"
    assert "tok39" not in partial
    chat_browser.wait_idle()
    assert chat_browser.answer().inner_text().strip().endswith("tok39")
    assert "in · 40 out" in page.inner_text(".msg.assistant .msg-meta")

    sent = rig.backend.last("/v1/chat/completions").json
    assert sent["messages"][-1]["content"] == "First line\nsecond line"
    conversation = Conversation.objects.get(user__username="dora")
    assert page.url == f"{rig.url}/chat/{conversation.pk}/"
    page.reload()
    page.wait_for_selector("#chat.ready")
    assert page.inner_text(".conversation-item.current").startswith("First line")
    assert page.inner_text(".msg.user .msg-body") == "First line\nsecond line"
    assert chat_browser.answer().inner_text().strip().endswith("tok39")
    chat_browser.assert_nothing_escaped()


def test_stop_cancels_at_the_backend_and_keeps_what_was_shown(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    rig.backend.behaviour.tokens = 400
    rig.backend.behaviour.token_delay = 0.05
    chat_browser.login(rig.alice)
    chat_browser.open()
    chat_browser.send("Tell me a long story")
    page.wait_for_selector(".msg.assistant .msg-body p:has-text('tok5')")
    page.click("#stop")
    chat_browser.wait_idle()
    shown = chat_browser.answer().inner_text().strip()
    assert "Stopped" in page.inner_text(".msg.assistant .msg-meta")
    cancelled = rig.backend.wait_for_cancellation()
    assert cancelled.path == "/v1/chat/completions"
    reply = _wait_for(lambda: Message.objects.filter(role="assistant").first())
    assert reply.content.startswith(shown)
    assert "tok399" not in reply.content
    record = rig.proxy.usage_record(reply.request_id)
    assert record.client == "browser" and record.key_id is None
    assert record.finish_reason == "client_disconnect"
    page.reload()
    page.wait_for_selector("#chat.ready")
    assert chat_browser.answer().inner_text().strip().startswith(shown)
    assert "Stopped" in page.inner_text(".msg.assistant .msg-meta")


def test_conversations_are_found_renamed_searched_and_deleted(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    ants = conversation_create(
        user=rig.alice, title="Ant navigation", model="fake-chat"
    )
    conversation_create(user=rig.alice, title="Bee dances", model="fake-chat")
    chat_browser.login(rig.alice)
    chat_browser.open()
    item = page.locator(f".conversation-item[data-id='{ants.pk}']")
    item.locator("[data-action=rename]").click()
    page.fill(".rename-input", "How ants find home")
    page.press(".rename-input", "Enter")
    page.wait_for_selector(".conversation-link:has-text('How ants find home')")
    page.reload()
    page.wait_for_selector("#chat.ready")
    assert (
        page.locator(".conversation-link", has_text="How ants find home").count() == 1
    )

    page.fill("#chat-search", "bee")
    expect(page.locator(".conversation-item")).to_have_count(1)
    assert page.inner_text(".conversation-item").strip().startswith("Bee dances")
    page.fill("#chat-search", "")
    expect(page.locator(".conversation-item")).to_have_count(2)

    delete = page.locator(
        f".conversation-item[data-id='{ants.pk}'] [data-action=delete]"
    )
    delete.click()
    delete.click()  # the second click confirms
    expect(page.locator(f".conversation-item[data-id='{ants.pk}']")).to_have_count(0)
    assert not Conversation.objects.filter(pk=ants.pk).exists()
    page.reload()
    page.wait_for_selector("#chat.ready")
    assert "How ants find home" not in page.inner_text("#conversation-list")


def test_images_go_to_vision_models_and_others_say_they_cannot_read_them(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    rig.vision_model()
    chat_browser.login(rig.alice)
    chat_browser.open()
    page.select_option("#model-picker", "fake-chat")
    page.click("#attach")
    assert "cannot read images" in page.inner_text("#notice")
    page.select_option("#model-picker", "fake-vision")
    assert "vision" in page.inner_text("#model-info")
    page.set_input_files(
        "#file-input",
        files=[{"name": "dot.png", "mimeType": "image/png", "buffer": PNG_BYTES}],
    )
    page.wait_for_selector(".attachment img")
    chat_browser.send("What is in this picture?")
    chat_browser.wait_idle()
    content = rig.backend.last("/v1/chat/completions").json["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is in this picture?"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert page.locator(".msg.user img.attached").count() == 1
    chat_browser.assert_nothing_escaped()


def test_a_rate_limited_researcher_is_told_so_in_words(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    UserLimits.objects.create(user=rig.alice, rpm=1)
    chat_browser.login(rig.alice)
    chat_browser.open()
    chat_browser.send("one")
    chat_browser.wait_idle()
    chat_browser.send("two")
    chat_browser.wait_idle()
    error = page.locator(".msg.assistant .msg-error").last
    assert "rate limit" in error.inner_text()
    assert "Retrying in" in error.inner_text()  # a live countdown
    # The page keeps the question and offers to send it again; the portal
    # stored nothing of the refused turn, so a reload shows the conversation
    # as it was and the next turn is not burdened with it.
    assert page.locator("[data-act=regenerate]").inner_text() == "Retry"
    assert page.locator(".msg.user").count() == 2
    page.reload()
    page.wait_for_selector("#chat.ready")
    assert page.locator(".msg.user").count() == 1
    assert page.locator("[data-act=regenerate]").inner_text() == "Regenerate"


def test_regenerate_edit_and_copy(chat_browser: ChatBrowser) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    rig.backend.behaviour.text = "Use this:\n\n```python\nprint('hi')\n```\n"
    chat_browser.login(rig.alice)
    chat_browser.open()
    chat_browser.send("How do I greet?")
    chat_browser.wait_idle()
    page.click(".copy-code")
    assert page.evaluate("navigator.clipboard.readText()") == "print('hi')"
    assert page.locator(".hljs-built_in").count() == 1, "highlighted"

    chat_browser.mark()
    page.click("[data-act=regenerate]")
    chat_browser.wait_idle()
    regenerated = rig.backend.last("/v1/chat/completions").json["messages"]
    assert [m["content"] for m in regenerated] == ["How do I greet?"]

    page.click("[data-act=edit]")
    assert page.input_value("#prompt") == "How do I greet?"
    page.fill("#prompt", "How do I greet in Estonian?")
    chat_browser.mark()
    page.press("#prompt", "Enter")
    chat_browser.wait_idle()
    edited = rig.backend.last("/v1/chat/completions").json["messages"]
    assert [m["content"] for m in edited] == ["How do I greet in Estonian?"]
    # Nothing is thrown away: both answers to the first question stay on
    # their branch beside the edited one (test_chat_branches_browser.py).
    stored = Message.objects.order_by("id")
    _wait_for(lambda: stored.count() == 5 and stored.last().role == "assistant")
    assert stored[3].content == "How do I greet in Estonian?"
    assert page.locator(".msg").count() == 2
    chat_browser.assert_nothing_escaped()
