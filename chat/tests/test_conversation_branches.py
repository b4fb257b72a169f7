"""Nothing is thrown away: messages form a tree, the page shows one branch,
and the next turn sends that branch only."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from django.apps import apps
from django.test import Client

from chat.models import Conversation, Message
from chat.selectors import ChatModel, conversation_thread, message_list
from chat.services import (
    TurnError,
    conversation_branch_switch,
    conversation_create,
    conversation_reply_record,
    conversation_turn_start,
)
from chat.turns import completion_body_build, history_fit, turn_history

pytestmark = pytest.mark.django_db


def _reply(conversation: Conversation, question: Message, content: str) -> Message:
    reply = conversation_reply_record(
        conversation_id=conversation.pk,
        user_message_id=question.pk,
        content=content,
        model="m",
        finish_reason="stop",
        prompt_tokens=1,
        completion_tokens=1,
        request_id="r",
    )
    assert reply is not None
    conversation.refresh_from_db()
    return reply


def _turn(conversation: Conversation, action: str, **kwargs: Any) -> Message:
    question = conversation_turn_start(
        conversation=conversation, action=action, **kwargs
    )
    conversation.refresh_from_db()
    return question


def _shown(conversation: Conversation) -> list[str]:
    conversation.refresh_from_db()
    return [m.content for m in message_list(conversation=conversation)]


def _three_turns(alice: Any) -> tuple[Conversation, list[Message]]:
    conversation = conversation_create(user=alice, model="m")
    made = []
    for n in (1, 2, 3):
        question = _turn(conversation, "send", content=f"q{n}")
        made += [question, _reply(conversation, question, f"a{n}")]
    return conversation, made


def test_editing_an_earlier_question_branches_and_keeps_the_old_branch(
    alice: Any,
) -> None:
    conversation, made = _three_turns(alice)
    q2 = made[2]
    edited = _turn(conversation, "edit", content="q2 again", message=q2.pk)
    assert edited.parent_id == q2.parent_id == made[1].pk
    _reply(conversation, edited, "a2 again")
    assert _shown(conversation) == ["q1", "a1", "q2 again", "a2 again"]
    thread = conversation_thread(conversation=conversation)
    assert thread.siblings[edited.pk] == [q2.pk, edited.pk]
    assert thread.siblings[made[0].pk] == [made[0].pk]

    assert conversation_branch_switch(conversation=conversation, message_id=q2.pk)
    assert _shown(conversation) == ["q1", "a1", "q2", "a2", "q3", "a3"]


def test_the_history_sent_upstream_follows_the_branch_shown(alice: Any) -> None:
    conversation, made = _three_turns(alice)
    edited = _turn(conversation, "edit", content="q2 again", message=made[2].pk)
    _reply(conversation, edited, "a2 again")
    stored = message_list(conversation=conversation)
    history = turn_history(
        conversation=conversation,
        stored=stored,
        action="send",
        content="next",
        images=(),
    )
    model = ChatModel("m", "M", 4096, None, ("chat",))
    kept, fit = history_fit(conversation=conversation, history=history, window=4096)
    body = completion_body_build(conversation=conversation, history=kept, model=model)
    sent = [m["content"] for m in body["messages"]]
    assert sent == ["q1", "a1", "q2 again", "a2 again", "next"]
    assert fit.trimmed == 0

    edit = turn_history(
        conversation=conversation,
        stored=stored,
        action="edit",
        content="q1 again",
        images=(),
        message=made[0].pk,
    )
    assert [m.content for m in edit] == ["q1 again"]


def test_an_edit_of_a_message_off_the_branch_is_refused(alice: Any) -> None:
    conversation, made = _three_turns(alice)
    _turn(conversation, "edit", content="q2 again", message=made[2].pk)
    with pytest.raises(TurnError):
        _turn(conversation, "edit", content="x", message=made[4].pk)


def test_regenerating_twice_gives_three_switchable_answers(alice: Any) -> None:
    conversation, made = _three_turns(alice)
    q3 = made[4]
    for text in ("a3 second", "a3 third"):
        assert _turn(conversation, "regenerate") == q3
        _reply(conversation, q3, text)
    thread = conversation_thread(conversation=conversation)
    assert len(thread.siblings[thread.path[-1].pk]) == 3
    assert conversation_branch_switch(conversation=conversation, message_id=made[5].pk)
    assert _shown(conversation)[-1] == "a3"
    assert not conversation_branch_switch(conversation=conversation, message_id=0)


def test_the_api_shows_and_switches_branches(alice: Any, bob: Any) -> None:
    conversation, made = _three_turns(alice)
    edited = _turn(conversation, "edit", content="q3 again", message=made[4].pk)
    other, _ = _three_turns(bob)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/")
    url = f"/api/conversations/{conversation.pk}/"

    def patch(body: dict[str, Any]) -> Any:
        return client.patch(
            url,
            json.dumps(body),
            content_type="application/json",
            headers={"X-CSRFToken": client.cookies["csrftoken"].value},
        )

    messages = client.get(url).json()["messages"]
    assert messages[-1]["siblings"] == [made[4].pk, edited.pk]
    assert patch({"active_message": made[4].pk}).status_code == 200
    assert [m["content"] for m in client.get(url).json()["messages"]][-2:] == [
        "q3",
        "a3",
    ]
    stranger = Message.objects.filter(conversation=other).first()
    assert stranger is not None
    assert patch({"active_message": stranger.pk}).status_code == 400


def test_the_migration_makes_old_conversations_one_branch(alice: Any) -> None:
    conversation = conversation_create(user=alice, model="m")
    old = [
        Message.objects.create(conversation=conversation, role=role, content=text)
        for role, text in (("user", "q"), ("assistant", "a"), ("user", "q2"))
    ]
    migration = importlib.import_module("chat.migrations.0005_message_tree_data")
    migration.messages_chain(apps, None)
    assert [m.parent_id for m in Message.objects.order_by("id")] == [
        None,
        old[0].pk,
        old[1].pk,
    ]
    assert _shown(conversation) == ["q", "a", "q2"]
