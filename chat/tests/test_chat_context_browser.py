"""In chromium: a conversation past the model's context window keeps working,
and each kind of refusal has its own label and action."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from catalog.models import Model, UserLimits
from chat.models import Message
from chat.tests.conftest import ChatBrowser
from usage.services import quota_set

pytestmark = pytest.mark.browser


def _model_set(**fields: Any) -> None:
    from apiproxy.catalog import catalog

    Model.objects.filter(public_id="fake-chat").update(
        capabilities_locked=True, **fields
    )
    catalog.invalidate()


def test_a_conversation_past_its_window_answers_and_says_what_it_left_out(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    _model_set(context_window=2048)
    conversation = rig.conversation()
    answer = None  # each message follows the one before (one branch)
    for index in range(3):
        question = Message.objects.create(
            conversation=conversation,
            parent=answer,
            role="user",
            content=f"question {index}",
        )
        # Each answer alone fills half the window.
        answer = Message.objects.create(
            conversation=conversation,
            parent=question,
            role="assistant",
            content="x " * 1500,
        )
    chat_browser.login(rig.alice)
    chat_browser.open(f"/chat/{conversation.pk}/")
    expect(page.locator("#context-meter")).to_contain_text("of the model's context")
    chat_browser.send("and now?")
    chat_browser.wait_idle()
    assert chat_browser.answer().inner_text().strip().startswith("tok0")
    note = page.locator(".context-note")
    expect(note).to_have_count(1)
    assert "4 earlier messages are not sent to the model" in note.inner_text()
    # The note sits above the kept part: the third question and what follows.
    following = note.locator("xpath=following-sibling::article[1]")
    assert "question 2" in following.inner_text()
    sent = rig.backend.last("/v1/chat/completions").json["messages"]
    assert sent[0]["content"] == "question 2"
    assert not page.locator(".msg-error").count()
    page.reload()
    page.wait_for_selector("#chat.ready")
    expect(page.locator(".context-note")).to_have_count(1)
    chat_browser.assert_nothing_escaped()


def test_a_first_message_too_long_for_the_model_is_worded_as_such(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    _model_set(context_window=200)
    chat_browser.login(rig.alice)
    chat_browser.open()
    chat_browser.send("word " * 400)
    chat_browser.wait_idle()
    error = page.locator(".msg.assistant .msg-error").last
    text = error.inner_text()
    assert "Your message is longer than this model can read" in text, text
    assert "the model reads 200)" in text
    assert "Too long for the model" in page.inner_text(".msg.assistant .msg-meta")
    assert not page.locator("[data-act=regenerate]").count()


def test_a_rate_limited_turn_counts_down_and_retries_by_itself(
    chat_browser: ChatBrowser,
) -> None:
    from apiproxy.catalog import catalog

    rig, page = chat_browser.rig, chat_browser.page
    UserLimits.objects.create(user=rig.alice, rpm=1)

    # The limiter's window is a minute; the refusal is real, only its
    # Retry-After is shortened so that the test need not wait that long.
    def shorten(route: Any) -> None:
        response = route.fetch()
        headers = dict(response.headers)
        if response.status == 429:
            headers["retry-after"] = "3"
        route.fulfill(response=response, headers=headers)

    page.route("**/chat/stream/", shorten)
    chat_browser.login(rig.alice)
    chat_browser.open()
    chat_browser.send("one")
    chat_browser.wait_idle()
    chat_browser.send("two")
    chat_browser.wait_idle()
    error = page.locator(".msg.assistant .msg-error").last
    assert "rate limit" in error.inner_text()
    expect(error.locator(".countdown")).to_contain_text("Retrying in")
    assert "Rate limited" in page.locator(".msg.assistant .msg-meta").last.inner_text()
    UserLimits.objects.filter(user=rig.alice).delete()
    catalog.invalidate()
    chat_browser.mark()
    chat_browser.wait_idle()
    expect(page.locator(".msg.assistant .msg-error")).to_have_count(0)
    assert chat_browser.answer().inner_text().strip().startswith("tok0")
    assert page.locator(".msg.user").count() == 2
    sent = rig.backend.last("/v1/chat/completions").json["messages"]
    assert sent[-1] == {"role": "user", "content": "two"}


def test_a_quota_refusal_says_when_it_resets_and_offers_no_retry(
    chat_browser: ChatBrowser,
) -> None:
    from usage.quota import quota_limits

    rig, page = chat_browser.rig, chat_browser.page
    quota_set(user=rig.alice, tokens=0, period="month")
    quota_limits.invalidate()  # the proxy's cached figures, read afresh
    chat_browser.login(rig.alice)
    chat_browser.open()
    chat_browser.send("hello")
    chat_browser.wait_idle()
    error = page.locator(".msg.assistant .msg-error").last
    assert "quota is used up" in error.inner_text()
    assert "resets" in error.inner_text()
    meta = page.locator(".msg.assistant .msg-meta").last.inner_text()
    assert "Quota used up" in meta and "Broke off" not in meta
    assert not page.locator("[data-act=regenerate]").count()
    quota_set(user=rig.alice, tokens=10**9, period="month")
    quota_limits.invalidate()


def test_an_answer_cut_at_the_length_limit_is_labelled_live(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    _model_set(recommended_params={"max_tokens": 3})
    rig.backend.behaviour.tokens = 8
    chat_browser.login(rig.alice)
    chat_browser.open()
    chat_browser.send("tell me everything")
    chat_browser.wait_idle()
    assert chat_browser.answer().inner_text().strip() == "tok0 tok1 tok2"
    meta = page.locator(".msg.assistant .msg-meta").last.inner_text()
    assert "Cut at the length limit" in meta


def test_a_model_disabled_after_the_page_loaded_says_pick_another(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    conversation = rig.conversation()
    chat_browser.login(rig.alice)
    chat_browser.open(f"/chat/{conversation.pk}/")
    _model_set(enabled=False)
    chat_browser.send("still there?")
    chat_browser.wait_idle()
    error = page.locator(".msg.assistant .msg-error").last.inner_text()
    assert "not available to you now" in error and "Pick another" in error, error
    assert "(400)" not in error
    meta = page.locator(".msg.assistant .msg-meta").last.inner_text()
    assert "Model unavailable" in meta and "Broke off" not in meta
    assert page.locator("[data-act=regenerate]").inner_text() == "Retry"


def test_only_an_answer_interrupted_mid_stream_says_broke_off(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    rig.backend.behaviour.tokens = 20
    rig.backend.behaviour.error_after_chunks = 3
    chat_browser.login(rig.alice)
    chat_browser.open()
    chat_browser.send("go on")
    chat_browser.wait_idle()
    assert "broke off" in page.locator(".msg.assistant .msg-error").last.inner_text()
    assert "Broke off" in page.locator(".msg.assistant .msg-meta").last.inner_text()
    assert page.locator("[data-act=regenerate]").inner_text() == "Retry"
