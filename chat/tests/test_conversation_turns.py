"""The two writes around a streamed answer, and the request built for it."""

from __future__ import annotations

from typing import Any

import pytest

from chat.models import Message
from chat.selectors import ChatModel, message_list
from chat.services import (
    TurnError,
    conversation_create,
    conversation_reply_record,
    conversation_turn_start,
)
from chat.turns import TurnRequestInvalid, completion_body_build, turn_request_parse

PNG = "data:image/png;base64,iVBORw0KGgo="
pytestmark = pytest.mark.django_db


def _model(**fields: Any) -> ChatModel:
    base: dict[str, Any] = {
        "public_id": "m",
        "display_name": "M",
        "context_window": 4096,
        "max_output_tokens": None,
        "capabilities": ("chat",),
    }
    return ChatModel(**{**base, **fields})


def _reply(conversation: Any, question: Message, content: str) -> Message | None:
    return conversation_reply_record(
        conversation_id=conversation.pk,
        user_message_id=question.pk,
        content=content,
        model="m",
        finish_reason="stop",
        prompt_tokens=3,
        completion_tokens=2,
        request_id="req_1",
    )


def test_it_titles_a_conversation_from_its_first_message(alice: Any) -> None:
    conversation = conversation_create(user=alice, model="m")
    conversation_turn_start(
        conversation=conversation, action="send", content="\n  How do ants navigate?\n"
    )
    conversation.refresh_from_db()
    assert conversation.title == "How do ants navigate?"


def test_regenerating_keeps_the_earlier_answer_as_a_sibling(alice: Any) -> None:
    conversation = conversation_create(user=alice, model="m")
    question = conversation_turn_start(
        conversation=conversation, action="send", content="hi"
    )
    first = _reply(conversation, question, "first answer")
    again = conversation_turn_start(conversation=conversation, action="regenerate")
    assert again == question
    conversation.refresh_from_db()
    assert conversation.active_leaf == first, "a refused retry changes nothing"
    second = _reply(conversation, again, "second answer")
    assert second is not None and first is not None
    assert [m.content for m in conversation.messages.all()] == [
        "hi",
        "first answer",
        "second answer",
    ]
    assert first.parent == second.parent == question
    conversation.refresh_from_db()
    assert [m.content for m in message_list(conversation=conversation)] == [
        "hi",
        "second answer",
    ]


def test_editing_the_last_question_branches_beside_it(alice: Any) -> None:
    conversation = conversation_create(user=alice, model="m")
    question = conversation_turn_start(
        conversation=conversation, action="send", content="hi"
    )
    _reply(conversation, question, "hello")
    edited = conversation_turn_start(
        conversation=conversation, action="edit", content="hi there"
    )
    assert edited.pk != question.pk and edited.parent_id is None
    conversation.refresh_from_db()
    assert [m.content for m in message_list(conversation=conversation)] == ["hi there"]
    assert conversation.messages.count() == 3, "the old question and answer stay"


def test_it_refuses_empty_turns(alice: Any) -> None:
    conversation = conversation_create(user=alice, model="m")
    with pytest.raises(TurnError):
        conversation_turn_start(conversation=conversation, action="send", content=" ")
    with pytest.raises(TurnError):
        conversation_turn_start(conversation=conversation, action="regenerate")


def test_a_reply_without_text_or_into_a_deleted_conversation_is_not_recorded(
    alice: Any,
) -> None:
    conversation = conversation_create(user=alice, model="m")
    question = conversation_turn_start(
        conversation=conversation, action="send", content="hi"
    )
    assert _reply(conversation, question, "") is None
    conversation.delete()
    assert _reply(conversation, question, "late") is None
    assert not Message.objects.exists()


def test_the_request_carries_system_prompt_recommended_params_and_temperature(
    alice: Any,
) -> None:
    conversation = conversation_create(
        user=alice, model="m", system_prompt="Be brief.", temperature=0.2
    )
    question = conversation_turn_start(
        conversation=conversation, action="send", content="hi"
    )
    model = _model(
        recommended_params={"temperature": 0.7, "top_p": 0.9, "note": "x", "seed": True}
    )
    body = completion_body_build(
        conversation=conversation, history=[question], model=model
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert body["temperature"] == 0.2, "the conversation's choice wins"
    assert body["top_p"] == 0.9
    assert "note" not in body and "seed" not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_images_go_to_vision_models_and_become_a_note_for_others(alice: Any) -> None:
    conversation = conversation_create(user=alice, model="m")
    question = conversation_turn_start(
        conversation=conversation, action="send", content="what is it?", images=[PNG]
    )
    vision = completion_body_build(
        conversation=conversation,
        history=[question],
        model=_model(capabilities=("chat", "vision")),
    )
    assert vision["messages"][0]["content"] == [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": PNG}},
    ]
    text_only = completion_body_build(
        conversation=conversation, history=[question], model=_model()
    )
    assert text_only["messages"][0]["content"].startswith("what is it?")
    assert "image(s) not shown" in text_only["messages"][0]["content"]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"conversation": "1"}',
        b'{"conversation": 1, "action": "delete"}',
        b'{"conversation": 1, "images": ["https://example.org/a.png"]}',
        b'{"conversation": 1, "images": ["data:text/html;base64,PHNjcmlwdD4="]}',
    ],
)
def test_it_refuses_malformed_turn_requests(raw: bytes) -> None:
    with pytest.raises(TurnRequestInvalid):
        turn_request_parse(raw)


def test_a_turn_the_conversation_no_longer_allows_is_refused_at_admission(
    alice: Any,
) -> None:
    """Between the browser door's two hops another tab may change the
    conversation: recording the turn then refuses cleanly (409), never 500."""
    from apiproxy.errors import ProxyError
    from chat.services import conversation_create
    from chat.stream import ChatTurn
    from chat.turns import TurnRequest

    conversation = conversation_create(user=alice, model="m")
    turn = ChatTurn()
    turn.conversation_id = conversation.pk
    turn.turn = TurnRequest(conversation.pk, "regenerate", "", ())
    with pytest.raises(ProxyError) as refused:
        turn.admitted()
    assert refused.value.status == 409
    assert not Message.objects.exists()
