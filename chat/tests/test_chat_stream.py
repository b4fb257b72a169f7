"""The chat's streaming call through the browser door, against the real server
(uvicorn in a thread, the fake OpenAI backend on loopback)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from catalog.models import UserLimits
from chat.models import Message
from chat.tests.conftest import ChatRig
from tests.factories import user_make

STREAM = "/chat/stream/"
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
    "2mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _events(response: httpx.Response) -> list[Any]:
    lines = [line for line in response.text.split("\n") if line.startswith("data: ")]
    return [json.loads(line[6:]) for line in lines if line != "data: [DONE]"]


def _reply(conversation: Any, timeout: float = 10.0) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = conversation.messages.filter(role="assistant").first()
        if reply is not None:
            return reply
        time.sleep(0.05)
    raise AssertionError("no reply recorded")


def test_it_streams_an_answer_and_records_the_turn_as_browser_traffic(
    chat: ChatRig,
) -> None:
    chat.backend.behaviour.tokens = 5
    conversation = chat.conversation(system_prompt="Be brief.")
    with chat.session(chat.alice) as client:
        response = client.post(
            STREAM, json={"conversation": conversation.pk, "content": "Hello there"}
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    text = "".join(
        choice["delta"].get("content") or ""
        for event in _events(response)
        for choice in event["choices"]
    )
    assert text == "tok0 tok1 tok2 tok3 tok4 "
    sent = chat.backend.last("/v1/chat/completions").json
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello there"},
    ]
    reply = _reply(conversation)
    assert reply.content == text and reply.completion_tokens == 5
    record = chat.proxy.usage_record(response.headers["x-request-id"])
    assert record.client == "browser" and record.key_id is None
    assert record.user_id == chat.alice.pk
    assert reply.request_id == record.request_id


def test_staff_recommended_parameters_apply_unless_the_conversation_sets_them(
    chat: ChatRig,
) -> None:
    from apiproxy.catalog import catalog
    from catalog.models import Model

    Model.objects.filter(public_id="fake-chat").update(
        recommended_params={"temperature": 0.6, "top_p": 0.95, "min_p": 0.05}
    )
    catalog.invalidate()
    default = chat.conversation()
    chosen = chat.conversation(temperature=0.1)
    with chat.session(chat.alice) as client:
        for conversation in (default, chosen):
            response = client.post(
                STREAM, json={"conversation": conversation.pk, "content": "hi"}
            )
            assert response.status_code == 200
    first, second = (r.json for r in chat.backend.requests("/v1/chat/completions"))
    assert (first["temperature"], first["top_p"], first["min_p"]) == (0.6, 0.95, 0.05)
    assert (second["temperature"], second["top_p"]) == (0.1, 0.95)


def test_a_stopped_stream_keeps_what_was_sent_and_the_backend_sees_it(
    chat: ChatRig,
) -> None:
    chat.backend.behaviour.tokens = 200
    chat.backend.behaviour.token_delay = 0.05
    conversation = chat.conversation()
    seen = ""
    with chat.session(chat.alice) as client:
        payload = {"conversation": conversation.pk, "content": "Tell me a story"}
        with client.stream("POST", STREAM, json=payload) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and '"content"' in line:
                    seen += json.loads(line[6:])["choices"][0]["delta"]["content"]
                if seen.count("tok") >= 5:
                    break
    cancelled = chat.backend.wait_for_cancellation()
    assert cancelled.path == "/v1/chat/completions"
    reply = _reply(conversation)
    assert reply.content.startswith(seen), "what was shown is kept"
    assert len(reply.content) < len("".join(f"tok{i} " for i in range(200)))
    assert reply.finish_reason == "client_disconnect"
    record = chat.proxy.usage_record(reply.request_id)
    assert record.client == "browser" and record.finish_reason == "client_disconnect"


def test_it_refuses_without_csrf_token_or_session_and_only_takes_post(
    chat: ChatRig,
) -> None:
    conversation = chat.conversation()
    body = {"conversation": conversation.pk, "content": "hi"}
    with chat.session(chat.alice, csrf=False) as client:
        forged = client.post(STREAM, json=body)
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "csrf_failed"
    token = "a" * 32
    anonymous = httpx.post(
        chat.url + STREAM,
        json=body,
        cookies={"csrftoken": token},
        headers={"x-csrftoken": token},
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    with chat.session(chat.alice) as client:
        assert client.get(STREAM).status_code == 405
    assert not chat.backend.requests("/v1/chat/completions")
    assert not Message.objects.exists()


def test_a_stranger_cannot_continue_anothers_conversation(chat: ChatRig) -> None:
    conversation = chat.conversation()
    bob = user_make(username="bob")
    with chat.session(bob) as client:
        for action in ("send", "regenerate", "edit"):
            response = client.post(
                STREAM,
                json={
                    "conversation": conversation.pk,
                    "action": action,
                    "content": "x",
                },
            )
            assert response.status_code == 404, action
    assert not conversation.messages.exists()
    assert not chat.backend.requests("/v1/chat/completions")


def test_it_shares_the_users_rate_limit_and_says_so(chat: ChatRig) -> None:
    UserLimits.objects.create(user=chat.alice, rpm=1)
    conversation = chat.conversation()
    with chat.session(chat.alice) as client:
        first = client.post(
            STREAM, json={"conversation": conversation.pk, "content": "a"}
        )
        second = client.post(
            STREAM, json={"conversation": conversation.pk, "content": "b"}
        )
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limit_exceeded"
    assert "retry-after" in second.headers


def test_images_reach_a_vision_model_and_are_refused_for_others(
    chat: ChatRig,
) -> None:
    chat.vision_model()
    text_only = chat.conversation()
    with chat.session(chat.alice) as client:
        refused = client.post(
            STREAM,
            json={"conversation": text_only.pk, "content": "what?", "images": [PNG]},
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "model_lacks_vision"
        assert not text_only.messages.exists()
        seeing = chat.conversation(model="fake-vision")
        answered = client.post(
            STREAM,
            json={"conversation": seeing.pk, "content": "what?", "images": [PNG]},
        )
    assert answered.status_code == 200, answered.text
    content = chat.backend.last("/v1/chat/completions").json["messages"][-1]["content"]
    assert content[1] == {"type": "image_url", "image_url": {"url": PNG}}


def test_a_browser_request_waits_in_line_and_hears_its_place(chat: ChatRig) -> None:
    from apiproxy.catalog import catalog
    from catalog.models import Backend

    Backend.objects.filter(name="fake").update(max_concurrency=1)
    catalog.invalidate()
    # The first request holds the only slot for a while (its first byte is
    # late), whatever the machine's load; the browser's waits behind it.
    chat.backend.script({"first_byte_delay": 5.0})
    holder = threading.Thread(
        target=lambda: chat.proxy.openai().chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "hold"}]
        )
    )
    holder.start()
    assert chat.backend.wait_for(
        lambda f: bool(f.requests("/v1/chat/completions")), timeout=5
    )
    conversation = chat.conversation()
    with chat.session(chat.alice) as client:
        response = client.post(
            STREAM, json={"conversation": conversation.pk, "content": "hi"}
        )
    holder.join(timeout=10)
    assert ": waiting for 'fake-chat', position 1 in line" in response.text
    assert _reply(conversation).content.startswith("tok0")


def test_a_refused_turn_is_not_stored_and_does_not_poison_the_next(
    chat: ChatRig,
) -> None:
    from apiproxy.catalog import catalog
    from catalog.models import Model

    Model.objects.filter(public_id="fake-chat").update(
        context_window=200, capabilities_locked=True
    )
    catalog.invalidate()
    conversation = chat.conversation()
    with chat.session(chat.alice) as client:
        refused = client.post(
            STREAM, json={"conversation": conversation.pk, "content": "word " * 400}
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "context_length_exceeded"
        assert not Message.objects.exists()
        answered = client.post(
            STREAM, json={"conversation": conversation.pk, "content": "short"}
        )
    assert answered.status_code == 200, answered.text
    _reply(conversation)
    sent = chat.backend.last("/v1/chat/completions").json
    assert [m["content"] for m in sent["messages"]] == ["short"]
    assert list(conversation.messages.values_list("role", flat=True)) == [
        "user",
        "assistant",
    ]


@pytest.mark.parametrize(
    "raw",
    [b'"a\\u0000b"', b'"lone \\ud800 surrogate"'],
    ids=["NUL", "lone surrogate"],
)
def test_text_the_database_cannot_store_is_a_400(chat: ChatRig, raw: bytes) -> None:
    conversation = chat.conversation()
    body = b'{"conversation": %d, "content": %s}' % (conversation.pk, raw)
    with chat.session(chat.alice) as client:
        response = client.post(
            STREAM, content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_turn"
    assert not Message.objects.exists()


def test_a_conversation_past_its_window_still_answers_without_its_oldest_turns(
    chat: ChatRig,
) -> None:
    from apiproxy.catalog import catalog
    from catalog.models import Model

    Model.objects.filter(public_id="fake-chat").update(
        context_window=2048, capabilities_locked=True
    )
    catalog.invalidate()
    conversation = chat.conversation(system_prompt="Be brief.")
    answer = None  # each message follows the one before (one branch)
    for index in range(3):
        question = Message.objects.create(
            conversation=conversation,
            parent=answer,
            role="user",
            content=f"question {index}",
        )
        answer = Message.objects.create(
            conversation=conversation,
            parent=question,
            role="assistant",
            content="x " * 1500,
        )
    with chat.session(chat.alice) as client:
        response = client.post(
            STREAM, json={"conversation": conversation.pk, "content": "and now?"}
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-chat-trimmed"] == "4"
    assert response.headers["x-chat-sent"] == "3"
    assert response.headers["x-chat-context-window"] == "2048"
    sent = chat.backend.last("/v1/chat/completions").json["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[0]["content"] == "Be brief." and sent[1]["content"] == "question 2"
    assert sent[-1]["content"] == "and now?"
    deadline = time.monotonic() + 10
    while conversation.messages.count() < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert conversation.messages.last().content.startswith("tok0")
