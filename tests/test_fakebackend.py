"""The fake backend must be trustworthy: every behaviour the proxy's tests rely
on is checked here against real sockets, with httpx and the official SDK."""

from __future__ import annotations

import base64
import json
import struct
import time

import httpx
import openai
import pytest

from tests.fakebackend import (
    INTERNAL_SECRET,
    INTERNAL_URL,
    FakeBackend,
    fake_text,
)

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "say hi"}]}


def sse_events(response: httpx.Response) -> list[str]:
    """The `data:` payloads of a streamed answer, in order."""
    return [
        line[len("data: ") :]
        for line in response.iter_lines()
        if line.startswith("data: ")
    ]


def sdk(fake: FakeBackend, **options: object) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=fake.base_url, api_key="sk-test", max_retries=0, **options
    )


def test_it_lists_configured_models_with_extra_fields(
    fake_backend: FakeBackend,
) -> None:
    fake_backend.behaviour.models = ["plain", {"id": "big", "max_model_len": 32768}]
    body = httpx.get(f"{fake_backend.base_url}/models").json()
    assert body["object"] == "list"
    assert [entry["id"] for entry in body["data"]] == ["plain", "big"]
    assert body["data"][1]["max_model_len"] == 32768
    assert {m.id for m in sdk(fake_backend).models.list()} == {"plain", "big"}


def test_it_streams_chat_chunks_that_end_with_done(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.tokens = 3
    with httpx.stream(
        "POST",
        f"{fake_backend.base_url}/chat/completions",
        json=CHAT | {"stream": True},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == fake_text(3) == "tok0 tok1 tok2 "
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in chunk for chunk in chunks)


def test_it_sends_a_usage_chunk_only_when_asked(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.tokens = 4
    stream = sdk(fake_backend).chat.completions.create(
        **CHAT, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert chunks[-1].usage.prompt_tokens == 2  # "say hi"
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_it_can_be_told_never_to_send_usage(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.usage = "never"
    client = sdk(fake_backend)
    stream = client.chat.completions.create(
        **CHAT, stream=True, stream_options={"include_usage": True}
    )
    assert all(chunk.usage is None for chunk in stream)
    assert client.chat.completions.create(**CHAT).usage is None


def test_it_answers_without_streaming_with_usage(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.tokens = 5
    answer = sdk(fake_backend).chat.completions.create(**CHAT)
    assert answer.choices[0].message.content == fake_text(5)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens == 7


def test_it_stops_at_max_tokens_with_finish_reason_length(
    fake_backend: FakeBackend,
) -> None:
    answer = sdk(fake_backend).chat.completions.create(**CHAT, max_tokens=2)
    assert answer.choices[0].message.content == fake_text(2)
    assert answer.choices[0].finish_reason == "length"


def test_it_streams_legacy_completions_with_usage(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.tokens = 3
    chunks = list(
        sdk(fake_backend).completions.create(
            model="fake-chat",
            prompt="once upon",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == fake_text(3)
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 2
    plain = sdk(fake_backend).completions.create(model="fake-chat", prompt="x")
    assert plain.object == "text_completion"


def test_it_waits_between_tokens(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.tokens = 4
    fake_backend.behaviour.token_delay = 0.05
    arrivals = []
    for chunk in sdk(fake_backend).chat.completions.create(**CHAT, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] >= 0.14  # three gaps of 50 ms


def test_it_delays_the_first_byte(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.first_byte_delay = 0.3
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{fake_backend.base_url}/chat/completions",
        json=CHAT | {"stream": True},
    ) as response:
        assert time.monotonic() - started >= 0.3
        assert response.status_code == 200


def test_it_dies_abruptly_after_n_chunks(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.die_after_chunks = 2
    events: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            f"{fake_backend.base_url}/chat/completions",
            json=CHAT | {"stream": True},
        ) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line)
    assert len(events) == 2
    assert "[DONE]" not in events[-1]
    assert fake_backend.last().chunks_sent == 2


def test_it_can_fail_mid_stream_with_an_error_event(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.error_after_chunks = 2
    with pytest.raises(openai.APIError, match="mid-stream"):
        list(sdk(fake_backend).chat.completions.create(**CHAT, stream=True))


def test_it_hangs_and_sees_the_client_give_up(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.hang = True
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{fake_backend.base_url}/chat/completions", json=CHAT, timeout=0.2)
    gave_up = time.monotonic()
    record = fake_backend.wait_for_cancellation(timeout=2)
    assert record.cancelled_at is not None
    assert record.cancelled_at - gave_up < 1.0
    assert record.chunks_sent == 0


def test_it_records_a_client_that_leaves_mid_stream(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.tokens = 100
    fake_backend.behaviour.token_delay = 0.02
    with httpx.stream(
        "POST",
        f"{fake_backend.base_url}/chat/completions",
        json=CHAT | {"stream": True},
    ) as response:
        for index, _line in enumerate(response.iter_lines()):
            if index > 6:
                break
    left = time.monotonic()
    record = fake_backend.wait_for_cancellation(timeout=2)
    assert record.cancelled_at is not None and record.cancelled_at - left < 1.0
    assert 0 < record.chunks_sent < 100


def test_it_goes_silent_mid_stream(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.hang_after_chunks = 1
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream(
            "POST",
            f"{fake_backend.base_url}/chat/completions",
            json=CHAT | {"stream": True},
            timeout=0.3,
        ) as response,
    ):
        for _line in response.iter_lines():
            pass
    assert fake_backend.wait_for_cancellation(timeout=2).chunks_sent == 1


@pytest.mark.parametrize("retry_after", [None, "7"])
def test_it_answers_overload_with_or_without_retry_after(
    fake_backend: FakeBackend, retry_after: str | None
) -> None:
    fake_backend.behaviour.status = 503
    fake_backend.behaviour.retry_after = retry_after
    response = httpx.post(f"{fake_backend.base_url}/chat/completions", json=CHAT)
    assert response.status_code == 503
    assert response.headers.get("retry-after") == retry_after
    assert response.json()["error"]["code"] == 503


def test_it_answers_429(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.status = 429
    with pytest.raises(openai.RateLimitError):
        sdk(fake_backend).chat.completions.create(**CHAT)


def test_its_400_has_an_integer_code_like_vllm(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.status = 400
    response = httpx.post(f"{fake_backend.base_url}/completions", json=CHAT)
    assert response.status_code == 400
    assert response.json()["code"] == 400


def test_its_500_leaks_internals_for_the_proxy_to_hide(
    fake_backend: FakeBackend,
) -> None:
    fake_backend.behaviour.status = 500
    response = httpx.post(f"{fake_backend.base_url}/chat/completions", json=CHAT)
    assert response.status_code == 500
    assert INTERNAL_URL in response.text
    assert INTERNAL_SECRET in response.text


def test_it_behaves_per_model_and_per_scripted_request(
    fake_backend: FakeBackend,
) -> None:
    fake_backend.for_model("broken", status=503)
    fake_backend.script({"status": 429}, {"tokens": 1})
    url = f"{fake_backend.base_url}/chat/completions"
    assert httpx.post(url, json=CHAT).status_code == 429
    assert httpx.post(url, json=CHAT).json()["usage"]["completion_tokens"] == 1
    assert httpx.post(url, json=CHAT).json()["usage"]["completion_tokens"] == 8
    assert httpx.post(url, json=CHAT | {"model": "broken"}).status_code == 503


def test_it_rejects_behaviour_it_does_not_have(fake_backend: FakeBackend) -> None:
    with pytest.raises(TypeError, match="tokenz"):
        fake_backend.for_model("x", tokenz=3)
    with pytest.raises(TypeError):
        fake_backend.script({"explode": True})


def test_it_embeds_as_floats_and_as_base64_of_the_same_vectors(
    fake_backend: FakeBackend,
) -> None:
    fake_backend.behaviour.embedding_dim = 12
    url = f"{fake_backend.base_url}/embeddings"
    request = {"model": "fake-embed", "input": ["alpha", "beta", "gamma"]}
    floats = httpx.post(url, json=request).json()
    packed = httpx.post(url, json=request | {"encoding_format": "base64"}).json()
    assert [item["index"] for item in floats["data"]] == [0, 1, 2]
    for plain, encoded in zip(floats["data"], packed["data"], strict=True):
        assert len(plain["embedding"]) == 12
        decoded = struct.unpack("<12f", base64.b64decode(encoded["embedding"]))
        assert list(decoded) == plain["embedding"]
    assert floats["data"][0]["embedding"] != floats["data"][1]["embedding"]
    # The SDK asks for base64 and decodes it itself.
    vectors = sdk(fake_backend).embeddings.create(model="fake-embed", input="alpha")
    assert vectors.data[0].embedding == pytest.approx(floats["data"][0]["embedding"])


def test_it_transcribes_a_multipart_upload(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.transcription_text = "tere maailm"
    audio = b"RIFF" + bytes(2000)
    result = sdk(fake_backend).audio.transcriptions.create(
        model="whisper-fake", file=("clip.wav", audio, "audio/wav"), language="et"
    )
    assert result.text == "tere maailm"
    form = fake_backend.last().form
    assert form["model"] == "whisper-fake"
    assert form["language"] == "et"
    assert form["file"] == {
        "filename": "clip.wav",
        "size": 2004,
        "content_type": "audio/wav",
    }


def test_it_answers_the_responses_api(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.tokens = 2
    client = sdk(fake_backend)
    assert client.responses.create(model="fake-chat", input="hi").output_text == (
        fake_text(2)
    )
    kinds = [
        event.type
        for event in client.responses.create(model="fake-chat", input="hi", stream=True)
    ]
    assert kinds[0] == "response.created"
    assert kinds.count("response.output_text.delta") == 2
    assert kinds[-1] == "response.completed"


def test_it_requires_the_configured_api_key(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.api_key = "sk-backend"
    url = f"{fake_backend.base_url}/models"
    assert httpx.get(url).status_code == 401
    headers = {"Authorization": "Bearer sk-backend"}
    assert httpx.get(url, headers=headers).status_code == 200
    assert httpx.get(f"{fake_backend.root_url}/health").status_code == 200


def test_it_records_headers_and_bodies(fake_backend: FakeBackend) -> None:
    httpx.post(
        f"{fake_backend.base_url}/chat/completions",
        json=CHAT,
        headers={"X-Request-Id": "req-1"},
    )
    record = fake_backend.last("/v1/chat/completions")
    assert record.headers["x-request-id"] == "req-1"
    assert record.json == CHAT
    assert json.loads(record.body) == CHAT
    assert record.model == "fake-chat"
    assert record.status == 200
    assert record.cancelled is False
    assert record.finished_at is not None and record.finished_at >= record.started_at


def test_it_refuses_connections_while_stopped_then_serves_on_the_same_port(
    fake_backend: FakeBackend,
) -> None:
    url = f"{fake_backend.base_url}/models"
    port = fake_backend.port
    with fake_backend.refusing():
        with pytest.raises(httpx.ConnectError):
            httpx.get(url)
    assert fake_backend.port == port
    assert httpx.get(url).status_code == 200


def test_it_reports_health(fake_backend: FakeBackend) -> None:
    assert httpx.get(f"{fake_backend.root_url}/health").json() == {"status": "ok"}
    fake_backend.behaviour.health_status = 503
    assert httpx.get(f"{fake_backend.root_url}/health").status_code == 503


async def test_it_serves_async_tests_without_blocking_their_loop(
    fake_backend: FakeBackend,
) -> None:
    fake_backend.behaviour.tokens = 3
    async with (
        httpx.AsyncClient() as client,
        client.stream(
            "POST",
            f"{fake_backend.base_url}/chat/completions",
            json=CHAT | {"stream": True},
        ) as response,
    ):
        lines = [line async for line in response.aiter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert await fake_backend.wait_for_async(lambda f: len(f.received) == 1)


def test_several_fakes_run_side_by_side(fake_backend_factory) -> None:  # type: ignore[no-untyped-def]
    first, second = fake_backend_factory(), fake_backend_factory()
    first.behaviour.models = ["one"]
    second.behaviour.models = ["two"]
    assert first.port != second.port
    assert httpx.get(f"{second.base_url}/models").json()["data"][0]["id"] == "two"


def test_it_can_answer_the_model_list_slowly(fake_backend: FakeBackend) -> None:
    fake_backend.behaviour.models_delay = 0.3
    started = time.monotonic()
    assert httpx.get(f"{fake_backend.base_url}/models").status_code == 200
    assert time.monotonic() - started >= 0.3
