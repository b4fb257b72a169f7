"""Branches in headless chromium: a regenerated answer and an edited question
keep what they replace, behind a "k/n" switcher that survives a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from chat.tests.conftest import ChatBrowser

pytestmark = pytest.mark.browser


def _turn(chat_browser: ChatBrowser, text: str, answer: str) -> None:
    chat_browser.rig.backend.behaviour.text = answer
    chat_browser.send(text)
    chat_browser.wait_idle()


def test_a_regenerated_answer_keeps_its_earlier_version(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    chat_browser.login(rig.alice)
    chat_browser.open()
    _turn(chat_browser, "Name a colour", "Old answer: red")
    rig.backend.behaviour.text = "New answer: blue"
    chat_browser.mark()
    page.click("[data-act=regenerate]")
    chat_browser.wait_idle()
    switcher = page.locator(".msg.assistant [data-act=branch]")
    expect(switcher).to_have_count(1)
    expect(switcher.locator(".branch-count")).to_have_text("2/2")

    switcher.get_by_role("button", name="Previous version").click()
    expect(chat_browser.answer()).to_contain_text("Old answer: red")
    expect(page.locator(".branch-count")).to_have_text("1/2")

    page.reload()
    page.wait_for_selector("#chat.ready")
    expect(chat_browser.answer()).to_contain_text("Old answer: red")
    expect(page.locator(".branch-count")).to_have_text("1/2")
    page.get_by_role("button", name="Next version").click()
    expect(chat_browser.answer()).to_contain_text("New answer: blue")
    chat_browser.assert_nothing_escaped()


def test_editing_an_earlier_question_branches_and_keeps_the_old_turns(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    chat_browser.login(rig.alice)
    chat_browser.open()
    _turn(chat_browser, "First question", "First answer")
    _turn(chat_browser, "Second question", "Second answer")
    expect(page.locator(".msg.user [data-act=edit]")).to_have_count(2)

    page.locator(".msg.user [data-act=edit]").first.click()
    assert page.input_value("#prompt") == "First question"
    page.fill("#prompt", "First question, edited")
    rig.backend.behaviour.text = "Answer to the edit"
    chat_browser.mark()
    page.press("#prompt", "Enter")
    chat_browser.wait_idle()
    sent = rig.backend.last("/v1/chat/completions").json["messages"]
    assert [m["content"] for m in sent] == ["First question, edited"]
    expect(page.locator(".msg")).to_have_count(2)
    first = page.locator(".msg.user").first
    expect(first.locator(".branch-count")).to_have_text("2/2")

    first.get_by_role("button", name="Previous version").click()
    expect(page.locator(".msg")).to_have_count(4)
    expect(page.locator(".msg.user").last).to_contain_text("Second question")
    expect(chat_browser.answer()).to_contain_text("Second answer")
    page.reload()
    page.wait_for_selector("#chat.ready")
    expect(page.locator(".msg")).to_have_count(4)
    chat_browser.assert_nothing_escaped()
