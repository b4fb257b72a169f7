"""A reasoning model's thinking, and models that load first, in headless
chromium against the real server (a fake reasoning model on loopback)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from chat.models import Message
from chat.tests.conftest import ChatBrowser
from tests.fakereasoning import FakeReasoner
from tests.fixtures_proxy import model_register

pytestmark = pytest.mark.browser

THOUGHTS = [
    "The user asks about the sky. ",
    "Sunlight scatters off air molecules; ",
    "<img src=x onerror=alert(1)> <b>shorter</b> wavelengths scatter more. ",
    "So: Rayleigh scattering.",
]
ANSWER = ["The sky is blue ", "because of **Rayleigh** scattering."]


@pytest.fixture
def reasoner() -> Iterator[FakeReasoner]:
    with FakeReasoner(thoughts=THOUGHTS, answer=ANSWER, delay=0.4) as fake:
        yield fake


def _stored_reply(timeout: float = 10.0) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = Message.objects.filter(role="assistant").order_by("-id").first()
        if reply is not None:
            return reply
        time.sleep(0.05)
    raise AssertionError("no reply recorded")


def _assert_thought_through(page: Any, thinking: Any) -> None:
    """Closed, saying how long, the thinking inside as text, the answer outside."""
    summary = thinking.locator("summary")
    expect(summary).to_have_text(re.compile(r"^Thought for \d+ s$"))
    assert thinking.get_attribute("open") is None
    expect(thinking.locator(".thinking-text")).to_be_hidden()
    summary.click()
    text = thinking.locator(".thinking-text")
    expect(text).to_be_visible()
    assert text.inner_text() == "".join(THOUGHTS)
    assert thinking.locator("img, b").count() == 0, "thinking is never markup"
    answer = page.locator(".msg.assistant .msg-body > p").last
    assert answer.inner_text() == "The sky is blue because of Rayleigh scattering."
    assert answer.locator("strong").inner_text() == "Rayleigh"
    assert "scatters" not in answer.inner_text()
    summary.click()


def test_thinking_streams_into_a_closed_section_and_stays_with_the_answer(
    chat_browser: ChatBrowser, reasoner: FakeReasoner
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    model_register(reasoner, name="thinker")
    chat_browser.login(rig.alice)
    chat_browser.open()
    page.select_option("#model-picker", "fake-thinker")
    chat_browser.send("Why is the sky blue?")

    thinking = page.locator(".msg.assistant .msg-body > details.thinking")
    expect(thinking.locator("summary")).to_have_text("Thinking…")
    assert page.is_visible("#stop"), "still streaming"
    assert thinking.get_attribute("open") is None, "closed by default"
    expect(thinking.locator(".thinking-text")).to_be_hidden()
    # Opened while it streams, it stays open as more thinking arrives.
    thinking.locator("summary").click()
    expect(thinking.locator(".thinking-text")).to_contain_text("air molecules")
    assert thinking.get_attribute("open") is not None
    thinking.locator("summary").click()
    chat_browser.wait_idle()
    _assert_thought_through(page, thinking)

    reply = _stored_reply()
    assert reply.reasoning == "".join(THOUGHTS)
    assert reply.content == "".join(ANSWER)
    # Four thoughts 0.4 s apart, then the answer 0.4 s later: about 1.6 s.
    assert reply.reasoning_seconds is not None and 1.0 <= reply.reasoning_seconds < 4

    page.reload()
    page.wait_for_selector("#chat.ready")
    _assert_thought_through(page, thinking)

    reasoner.thoughts = ["Dusk: longer path, "]
    chat_browser.send("And at sunset?")
    chat_browser.wait_idle()
    sent = reasoner.requests[-1]["messages"]
    assert sent == [
        {"role": "user", "content": "Why is the sky blue?"},
        {"role": "assistant", "content": "".join(ANSWER)},
        {"role": "user", "content": "And at sunset?"},
    ]
    assert page.locator("details.thinking").count() == 2
    chat_browser.assert_nothing_escaped()


def test_a_model_that_is_not_loaded_says_it_loads_first(
    chat_browser: ChatBrowser,
) -> None:
    from apiproxy.catalog import catalog
    from catalog.models import Deployment

    rig, page = chat_browser.rig, chat_browser.page
    rig.vision_model()
    Deployment.objects.filter(model__public_id="fake-chat").update(
        loaded=False, load_seconds=12.3
    )
    Deployment.objects.filter(model__public_id="fake-vision").update(loaded=False)
    catalog.invalidate()
    chat_browser.login(rig.alice)
    chat_browser.open()
    options = page.locator("#model-picker option")
    labels = {o.get_attribute("value"): o.inner_text() for o in options.all()}
    assert labels["fake-chat"] == "fake-chat — loads first (about 12 s)"
    assert labels["fake-vision"] == "fake-vision — loads first"

    page.select_option("#model-picker", "fake-chat")
    assert "8,192-token context" in page.inner_text("#model-info")
    assert "loads first (about 12 s)" in page.inner_text("#model-info")
    chat_browser.send("Hello")
    chat_browser.wait_idle()
    assert rig.backend.last("/v1/chat/completions").json["model"] == "fake-chat"

    Deployment.objects.filter(model__public_id="fake-chat").update(loaded=True)
    catalog.invalidate()
    page.reload()
    page.wait_for_selector("#chat.ready")
    ready = page.locator("#model-picker option[value='fake-chat']")
    assert ready.inner_text() == "fake-chat"
    assert "loads first" not in page.inner_text("#model-info")
    chat_browser.assert_nothing_escaped()
