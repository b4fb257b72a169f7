"""The conversation list's search (titles and message text), which
conversations it hides, titles made from a first message, and the Markdown and
JSON exports (owner only)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from chat.models import Conversation
from chat.selectors import conversation_list
from chat.services import (
    conversation_create,
    conversation_reply_record,
    conversation_turn_start,
)

pytestmark = pytest.mark.django_db


def _answered(user: Any, title: str, question: str, answer: str) -> Conversation:
    conversation = conversation_create(user=user, title=title, model="m")
    asked = conversation_turn_start(
        conversation=conversation, action="send", content=question
    )
    conversation_reply_record(
        conversation_id=conversation.pk,
        user_message_id=asked.pk,
        content=answer,
        model="m",
        finish_reason="stop",
        prompt_tokens=3,
        completion_tokens=5,
        request_id="req-1",
        reasoning="Let me think.",
    )
    return conversation


def _titles(user: Any, query: str = "") -> list[str]:
    return [c.title for c in conversation_list(user=user, query=query)]


def test_search_finds_a_word_that_appears_only_in_an_answer(
    alice: Any, bob: Any
) -> None:
    _answered(alice, "Insects", "Tell me about ants", "Ants follow pheromone trails.")
    _answered(alice, "Birds", "Tell me about owls", "Owls hunt at night.")
    _answered(bob, "Bob's insects", "Ants?", "Pheromone again.")
    assert _titles(alice, "pheromone") == ["Insects"]
    assert _titles(alice, "PHEROMONE") == ["Insects"]
    assert _titles(alice, "birds") == ["Birds"], "titles still match"
    assert _titles(alice, "walrus") == []


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="full-text search is PostgreSQL's"
)
def test_on_postgresql_search_is_full_text_with_stemming_and_websearch_syntax(
    alice: Any,
) -> None:
    _answered(alice, "Bees", "How do bees talk?", "A bee dances to tell the hive.")
    _answered(alice, "Ants", "How do ants talk?", "Ants leave trails.")
    assert _titles(alice, "dancing") == ["Bees"], "stemmed: dances ~ dancing"
    assert _titles(alice, '"tell the hive"') == ["Bees"]
    assert sorted(_titles(alice, "hive or trails")) == ["Ants", "Bees"]
    assert _titles(alice, "talk -bees") == ["Ants"]
    assert _titles(alice, "'); drop table chat_message; --") == []


def test_a_conversation_whose_first_turn_failed_is_not_listed(alice: Any) -> None:
    _answered(alice, "Answered", "q", "a")
    conversation_create(user=alice, title="Named, not started")
    conversation_create(user=alice)  # the first turn was refused: nothing stored
    failed = conversation_create(user=alice, model="m")
    asked = conversation_turn_start(conversation=failed, action="send", content="Hi")
    conversation_reply_record(
        conversation_id=failed.pk,
        user_message_id=asked.pk,
        content="",
        model="m",
        finish_reason="error",
        prompt_tokens=None,
        completion_tokens=None,
        request_id="",
    )
    assert sorted(_titles(alice)) == ["Answered", "Named, not started"]
    assert Conversation.objects.filter(pk=failed.pk).exists(), "Retry still works"


def test_a_title_made_from_a_long_first_message_stores_no_ellipsis(
    alice: Any,
) -> None:
    long = conversation_create(user=alice)
    conversation_turn_start(conversation=long, action="send", content="word " * 40)
    dots = conversation_create(user=alice)
    conversation_turn_start(conversation=dots, action="send", content="Wait…\nmore")
    long.refresh_from_db()
    dots.refresh_from_db()
    assert not long.title.endswith("…") and long.title.startswith("word word")
    assert len(long.title) <= 60
    assert dots.title == "Wait"


def test_the_owner_exports_markdown_and_json_as_downloads(alice: Any) -> None:
    conversation = _answered(
        alice, "Ant navigation", "How do ants find home?", "**Path integration.**"
    )
    client = Client()
    client.force_login(alice)
    base = f"/api/conversations/{conversation.pk}/"
    markdown = client.get(base + "export.md")
    assert markdown.status_code == 200
    assert markdown["Content-Type"].startswith("text/markdown")
    assert markdown["Content-Disposition"] == (
        f'attachment; filename="ant-navigation-{conversation.pk}.md"'
    )
    text = markdown.content.decode()
    assert text.startswith("# Ant navigation\n")
    assert "## You\n\nHow do ants find home?" in text
    assert "## Assistant (m)\n\n> **Thinking**\n>\n> Let me think.\n" in text
    assert "**Path integration.**" in text

    exported = client.get(base + "export.json")
    assert exported.status_code == 200
    assert exported["Content-Disposition"].startswith("attachment; filename=")
    data = json.loads(exported.content)
    assert data["title"] == "Ant navigation"
    assert [(m["role"], m["content"]) for m in data["messages"]] == [
        ("user", "How do ants find home?"),
        ("assistant", "**Path integration.**"),
    ]
    assert data["messages"][1]["completion_tokens"] == 5


def test_exports_are_404_for_anyone_else_and_refused_without_login(
    alice: Any, bob: Any
) -> None:
    conversation = _answered(alice, "Private", "secret question", "secret answer")
    client = Client()
    client.force_login(bob)
    for suffix in ("export.md", "export.json"):
        url = f"/api/conversations/{conversation.pk}/{suffix}"
        response = client.get(url)
        assert response.status_code == 404
        assert b"secret" not in response.content
        assert Client().get(url).status_code in (401, 403)
