"""A reasoning model's thinking in the chat: read from the stream the browser
is sent, stored beside the answer with its duration, never sent back to the
model; and the picker's word on models that load first."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from apiproxy.browser import StreamText
from chat.api import message_data
from chat.models import Message
from chat.selectors import ChatModel, chat_model_list
from chat.services import (
    conversation_create,
    conversation_reply_record,
    conversation_turn_start,
)
from chat.tests.conftest import ChatRig
from chat.turns import completion_body_build
from tests.fakereasoning import FakeReasoner
from tests.fixtures_proxy import model_register

STREAM = "/chat/stream/"


def _reply(conversation: Any, timeout: float = 10.0) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = conversation.messages.filter(role="assistant").first()
        if reply is not None:
            return reply
        time.sleep(0.05)
    raise AssertionError("no reply recorded")


def _record(conversation: Any, question: Message, **fields: Any) -> Message | None:
    values: dict[str, Any] = {
        "content": "Blue.",
        "model": "m",
        "finish_reason": "stop",
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "request_id": "req_1",
    }
    return conversation_reply_record(
        conversation_id=conversation.pk,
        user_message_id=question.pk,
        **{**values, **fields},
    )


@pytest.fixture
def reasoner() -> Iterator[FakeReasoner]:
    with FakeReasoner(
        thoughts=["The sky ", "scatters ", "blue light."], answer=["Rayleigh."]
    ) as fake:
        yield fake


# -- reading the stream ----------------------------------------------------


def _sse(*events: bytes) -> list[dict[str, Any]]:
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/event-stream")],
    }
    bodies = [
        {"type": "http.response.body", "body": e, "more_body": True} for e in events
    ]
    return [start, *bodies]


def test_the_door_reads_both_reasoning_fields_and_times_the_thinking() -> None:
    seen = StreamText()
    for message in _sse(
        b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n',
        b'data: {"choices":[{"delta":{"reasoning_content":"One, ","content":null}}]}\n',
        b'\ndata: {"choices":[{"delta":{"reasoning":"two."}}]}\n\n',
    ):
        seen.feed(message)
    time.sleep(0.2)
    for message in _sse(b'data: {"choices":[{"delta":{"content":"Three"}}]}\n\n')[1:]:
        seen.feed(message)
    time.sleep(0.2)
    assert (seen.reasoning, seen.text) == ("One, two.", "Three")
    assert seen.reasoning_seconds is not None
    assert 0.15 <= seen.reasoning_seconds < 0.35, "until the answer began, not now"


def test_a_stream_without_thinking_has_no_reasoning() -> None:
    seen = StreamText()
    for message in _sse(b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'):
        seen.feed(message)
    assert (seen.reasoning, seen.reasoning_seconds) == ("", None)


# -- storing it and keeping it from the model ---------------------------------


@pytest.mark.django_db
def test_the_thinking_is_stored_with_the_answer_and_never_sent_back(
    alice: Any,
) -> None:
    conversation = conversation_create(user=alice, model="m")
    question = conversation_turn_start(
        conversation=conversation, action="send", content="Why is the sky blue?"
    )
    reply = _record(
        conversation, question, reasoning="SECRET THOUGHTS", reasoning_seconds=3.5
    )
    assert reply is not None
    reply.refresh_from_db()
    assert (reply.reasoning, reply.reasoning_seconds) == ("SECRET THOUGHTS", 3.5)
    assert message_data(reply)["reasoning"] == "SECRET THOUGHTS"
    assert message_data(reply)["reasoning_seconds"] == 3.5

    follow_up = conversation_turn_start(
        conversation=conversation, action="send", content="And at sunset?"
    )
    model = ChatModel(
        public_id="m",
        display_name="M",
        context_window=4096,
        max_output_tokens=None,
        capabilities=("chat",),
    )
    body = completion_body_build(
        conversation=conversation,
        history=[question, reply, follow_up],
        model=model,
    )
    assert body["messages"] == [
        {"role": "user", "content": "Why is the sky blue?"},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "And at sunset?"},
    ]
    assert "SECRET" not in str(body)


@pytest.mark.django_db
def test_an_answer_stopped_while_thinking_keeps_the_thinking_alone(
    alice: Any,
) -> None:
    conversation = conversation_create(user=alice, model="m")
    question = conversation_turn_start(
        conversation=conversation, action="send", content="Think hard"
    )
    reply = _record(
        conversation,
        question,
        content="",
        reasoning="Hm\x00m\ud800",
        finish_reason="client_disconnect",
    )
    assert reply is not None and reply.content == ""
    assert reply.reasoning == "Hm\ufffdm?", "a NUL would have lost the reply"
    body = completion_body_build(
        conversation=conversation,
        history=[question, reply],
        model=ChatModel("m", "M", 4096, None, ("chat",)),
    )
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert _record(conversation, question, content="", reasoning="") is None


# -- through the browser door, for real ----------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_a_streamed_turn_stores_the_thinking_and_its_duration(
    chat: ChatRig, reasoner: FakeReasoner, field: str
) -> None:
    reasoner.field = field
    model_register(reasoner, name="thinker")
    conversation = chat.conversation(model="fake-thinker")
    with chat.session(chat.alice) as client:
        response = client.post(
            STREAM, json={"conversation": conversation.pk, "content": "Why blue?"}
        )
        assert response.status_code == 200, response.text
        assert f'"{field}": "scatters "' in response.text, "relayed unchanged"
        reply = _reply(conversation)
        assert reply.content == "Rayleigh."
        assert reply.reasoning == "The sky scatters blue light."
        # Three thoughts and the answer, 0.1 s apart: about 0.3 s of thinking.
        assert reply.reasoning_seconds is not None
        assert 0.2 <= reply.reasoning_seconds < 2

        response = client.post(
            STREAM, json={"conversation": conversation.pk, "content": "And red?"}
        )
        assert response.status_code == 200, response.text
    sent = reasoner.requests[-1]["messages"]
    assert sent == [
        {"role": "user", "content": "Why blue?"},
        {"role": "assistant", "content": "Rayleigh."},
        {"role": "user", "content": "And red?"},
    ]


# -- readiness in the picker ----------------------------------------------------


def test_the_picker_says_which_models_load_first() -> None:
    def model(**fields: Any) -> ChatModel:
        return ChatModel("llama3:70b", "llama3:70b", 8192, None, ("chat",), **fields)

    assert model().picker_label == "llama3:70b"
    assert model(ready=False).picker_label == "llama3:70b — loads first"
    slow = model(ready=False, load_seconds=11.6)
    assert slow.picker_label == "llama3:70b — loads first (about 12 s)"
    assert slow.as_dict()["readiness"] == "loads first (about 12 s)"
    assert slow.as_dict()["ready"] is False
    quick = model(ready=False, load_seconds=0.3)
    assert quick.picker_label == "llama3:70b — loads first (about 1 s)"


def test_the_chat_lists_a_model_not_loaded_as_loading_first(chat: ChatRig) -> None:
    from catalog.models import Deployment

    Deployment.objects.filter(model__public_id="fake-chat").update(
        loaded=False, load_seconds=7.2
    )
    (listed,) = [
        m for m in chat_model_list(user=chat.alice) if m.public_id == "fake-chat"
    ]
    assert (listed.ready, listed.load_seconds) == (False, 7.2)
    Deployment.objects.filter(model__public_id="fake-chat").update(loaded=True)
    (listed,) = [
        m for m in chat_model_list(user=chat.alice) if m.public_id == "fake-chat"
    ]
    assert listed.ready and listed.picker_label == listed.display_name
