"""Responses API streams end cleanly after their final event (they have no
[DONE]), and thoughts (reasoning tokens) stream through unchanged and are
metered as a part of the completion tokens, reported or counted."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fixtures_proxy import ProxyRig

MESSAGES = [{"role": "user", "content": "why is the sky blue?"}]
THOUGHTS = ["Light ", "scatters; ", "blue ", "most."]


def test_a_responses_stream_ends_cleanly_and_is_metered(proxy: ProxyRig) -> None:
    proxy.backend.behaviour.tokens = 3
    proxy.backend.behaviour.reasoning = ["Hm, ", "easy."]
    stream = proxy.openai().responses.create(
        model="fake-chat", input="say three words", stream=True
    )
    kinds = [event.type for event in stream]  # raises on an error event
    assert kinds[0] == "response.created"
    assert kinds.count("response.output_text.delta") == 3
    assert kinds.count("response.reasoning_text.delta") == 2
    assert kinds[-1] == "response.completed"
    assert "error" not in kinds
    record = proxy.usage_record(stream.response.headers["x-request-id"])
    assert (record.status, record.finish_reason) == (200, "stop")
    assert (record.prompt_tokens, record.completion_tokens) == (3, 5)
    assert record.reasoning_tokens == 2
    assert record.usage_source == "reported"
    assert record.ttft_ms is not None


def test_a_responses_stream_is_relayed_byte_for_byte(proxy: ProxyRig) -> None:
    with proxy.http() as http:
        relayed = http.post(
            "/v1/responses", json={"model": "fake-chat", "input": "hi", "stream": True}
        )
    assert relayed.status_code == 200
    assert relayed.content == proxy.backend.last("/v1/responses").sent
    assert b"[DONE]" not in relayed.content


@pytest.mark.parametrize(
    ("end", "finish", "status"),
    [("incomplete", "length", 200), ("failed", "backend_error", 502)],
)
def test_an_unfinished_responses_stream_is_recorded_as_such(
    proxy: ProxyRig, end: str, finish: str, status: int
) -> None:
    proxy.backend.behaviour.responses_end = end
    with proxy.http() as http:
        relayed = http.post(
            "/v1/responses", json={"model": "fake-chat", "input": "hi", "stream": True}
        )
    assert relayed.content == proxy.backend.last("/v1/responses").sent
    record = proxy.usage_record(relayed.headers["x-request-id"])
    assert (record.finish_reason, record.status) == (finish, status)


def test_a_responses_stream_that_breaks_off_is_still_an_interruption(
    proxy: ProxyRig,
) -> None:
    proxy.backend.behaviour.end_after_chunks = 4  # before response.completed
    with proxy.http() as http:
        relayed = http.post(
            "/v1/responses", json={"model": "fake-chat", "input": "hi", "stream": True}
        )
    assert b"backend_stream_interrupted" in relayed.content.splitlines()[-2]
    record = proxy.usage_record(relayed.headers["x-request-id"])
    assert record.finish_reason == "backend_error"


def test_a_non_streamed_response_meters_its_reasoning(proxy: ProxyRig) -> None:
    proxy.backend.behaviour.reasoning = THOUGHTS
    with proxy.http() as http:
        answer = http.post("/v1/responses", json={"model": "fake-chat", "input": "hi"})
    record = proxy.usage_record(answer.headers["x-request-id"])
    assert (record.completion_tokens, record.reasoning_tokens) == (8 + 4, 4)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
@pytest.mark.parametrize("reported", [True, False])
def test_thoughts_stream_through_unchanged_and_are_metered(
    proxy: ProxyRig, field: str, reported: bool
) -> None:
    fake = proxy.backend.behaviour
    fake.reasoning, fake.reasoning_field, fake.reasoning_usage = (
        THOUGHTS,
        field,
        reported,
    )
    fake.tokens = 3
    body = {
        "model": "fake-chat",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with proxy.http() as http:
        relayed = http.post("/v1/chat/completions", json=body)
    assert relayed.content == proxy.backend.last("/v1/chat/completions").sent
    record = proxy.usage_record(relayed.headers["x-request-id"])
    # Reported (vLLM) or counted chunk by chunk (llama.cpp reports none):
    # four thoughts, a part of the seven completion tokens, not added on.
    assert (record.completion_tokens, record.reasoning_tokens) == (7, 4)
    assert record.ttft_ms is not None


def test_thoughts_are_counted_when_the_backend_reports_no_usage(
    proxy: ProxyRig,
) -> None:
    fake = proxy.backend.behaviour
    fake.reasoning, fake.tokens, fake.usage = THOUGHTS, 3, "never"
    with proxy.http() as http:
        relayed = http.post(
            "/v1/chat/completions",
            json={"model": "fake-chat", "messages": MESSAGES, "stream": True},
        )
    record = proxy.usage_record(relayed.headers["x-request-id"])
    assert (record.completion_tokens, record.reasoning_tokens) == (7, 4)
    assert record.usage_source == "counted"


def test_the_usage_portico_adds_says_how_much_was_thought(proxy: ProxyRig) -> None:
    fake = proxy.backend.behaviour
    fake.reasoning, fake.tokens, fake.usage = THOUGHTS, 3, "never"
    chunks = list(
        proxy.openai().chat.completions.create(
            model="fake-chat",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert usage.completion_tokens == 7
    assert usage.completion_tokens_details.reasoning_tokens == 4


@pytest.mark.parametrize("reported", [True, False])
def test_a_non_streamed_answer_meters_its_thoughts(
    proxy: ProxyRig, reported: bool
) -> None:
    fake = proxy.backend.behaviour
    fake.reasoning, fake.reasoning_usage, fake.tokens = THOUGHTS, reported, 3
    with proxy.http() as http:
        answer = http.post(
            "/v1/chat/completions", json={"model": "fake-chat", "messages": MESSAGES}
        )
    assert answer.json()["choices"][0]["message"]["reasoning_content"] == "".join(
        THOUGHTS
    )
    record = proxy.usage_record(answer.headers["x-request-id"])
    assert record.completion_tokens == 7
    # Reported: 4. Not reported: estimated from the 26 characters of thought.
    assert record.reasoning_tokens == (4 if reported else 26 // 4 + 1)


def test_the_observer_counts_a_chunk_bearing_both_names_once() -> None:
    from apiproxy.observer import StreamObserver

    observer = StreamObserver(strip_usage=False, synthesise_usage=False, model="m")
    delta = {"reasoning_content": "Hm", "reasoning": "Hm"}
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    observer.feed(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    assert (observer.content_chunks, observer.reasoning_chunks) == (1, 1)
    assert observer.first_token_at is not None


def test_text_naming_the_end_event_does_not_end_a_stream() -> None:
    from apiproxy.observer import StreamObserver

    observer = StreamObserver(strip_usage=False, synthesise_usage=False, model="m")
    event = {"type": "response.output_text.delta", "delta": "response.completed"}
    framed = b"event: response.output_text.delta\ndata: " + json.dumps(event).encode()
    observer.feed(framed + b"\n\n")
    assert not observer.done and observer.content_chunks == 1


def test_responses_usage_reaches_the_stream_sdk_unchanged(proxy: ProxyRig) -> None:
    proxy.backend.behaviour.tokens = 2
    with proxy.openai().responses.stream(model="fake-chat", input="hi") as stream:
        final = stream.get_final_response()
    assert final.usage.output_tokens == 2
    assert final.output_text == "tok0 tok1 "


def test_http_level_stream_has_no_appended_error(proxy: ProxyRig) -> None:
    with httpx.Client(timeout=10) as http:
        response = http.post(
            proxy.base_url + "/responses",
            headers={"authorization": f"Bearer {proxy.key}"},
            json={"model": "fake-chat", "input": "hi", "stream": True},
        )
    assert response.text.rstrip().splitlines()[-1].startswith("data: {")
    assert '"type":"response.completed"' in response.text.rstrip().splitlines()[-1]
