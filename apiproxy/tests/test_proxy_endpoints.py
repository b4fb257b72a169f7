"""Every endpoint through the real proxy, driven by the official openai SDK
and raw HTTP, against a real OpenAI-speaking backend on loopback."""

from __future__ import annotations

import base64
import io
import json
import struct

import pytest

from tests.fixtures_proxy import ProxyRig

MESSAGES = [{"role": "user", "content": "Say something."}]


def test_models_are_listed_in_openai_shape_with_portico_metadata(
    proxy: ProxyRig,
) -> None:
    models = {m.id: m for m in proxy.openai().models.list()}
    assert {"fake-chat", "fake-embed", "whisper-fake"} <= set(models)
    chat = models["fake-chat"]
    assert chat.object == "model" and chat.owned_by and chat.created
    extra = chat.model_extra
    assert extra["context_window"] > 0
    assert set(extra["capabilities"]) >= {"chat", "completions"}
    assert models["fake-embed"].model_extra["capabilities"] == ["embeddings"]
    assert proxy.openai().models.retrieve("fake-chat").id == "fake-chat"


def test_a_chat_completion_comes_back_with_usage_and_a_request_id(
    proxy: ProxyRig,
) -> None:
    raw = proxy.openai().chat.completions.with_raw_response.create(
        model="fake-chat", messages=MESSAGES, max_tokens=5
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.model == "fake-chat"
    assert completion.usage.completion_tokens == 5
    request_id = raw.headers["x-request-id"]
    record = proxy.usage_record(request_id)
    assert record.user_id == proxy.user.pk
    assert record.completion_tokens == 5
    assert record.usage_source == "reported"
    assert record.status == 200 and not record.stream
    # The backend never sees the client's key.
    assert proxy.key not in json.dumps(proxy.backend.received[-1].headers)


def test_a_stream_arrives_chunk_by_chunk_without_the_usage_chunk_nobody_asked_for(
    proxy: ProxyRig,
) -> None:
    stream = proxy.openai().chat.completions.create(
        model="fake-chat", messages=MESSAGES, stream=True, max_tokens=6
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert all(c.usage is None for c in chunks)
    # ...but Portico asked the backend for usage, to bill it.
    sent = proxy.backend.received[-1].json
    assert sent["stream_options"] == {"include_usage": True}
    request_id = stream.response.headers["x-request-id"]
    record = proxy.usage_record(request_id)
    assert record.completion_tokens == 6 and record.usage_source == "reported"
    assert record.stream and record.ttft_ms is not None


def test_a_stream_ends_with_usage_when_the_client_asks(proxy: ProxyRig) -> None:
    chunks = list(
        proxy.openai().chat.completions.create(
            model="fake-chat",
            messages=MESSAGES,
            stream=True,
            max_tokens=4,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage.completion_tokens == 4
    assert chunks[-1].choices == []


def test_usage_is_counted_and_sent_when_the_backend_reports_none(
    proxy: ProxyRig,
) -> None:
    proxy.backend.behaviour.usage = "never"
    stream = proxy.openai().chat.completions.create(
        model="fake-chat",
        messages=MESSAGES,
        stream=True,
        max_tokens=7,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage.completion_tokens == 7
    record = proxy.usage_record(stream.response.headers["x-request-id"])
    assert record.usage_source == "counted" and record.completion_tokens == 7


def test_legacy_completions_stream_and_not(proxy: ProxyRig) -> None:
    client = proxy.openai()
    completion = client.completions.create(
        model="fake-chat", prompt="Once", max_tokens=3
    )
    assert completion.choices[0].text
    chunks = list(
        client.completions.create(
            model="fake-chat", prompt="Once", max_tokens=3, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices)


def test_embeddings_in_base64_as_the_sdk_asks_and_in_float(proxy: ProxyRig) -> None:
    client = proxy.openai()
    result = client.embeddings.create(model="fake-embed", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    assert proxy.backend.received[-1].json["encoding_format"] == "base64"
    floats = client.embeddings.create(
        model="fake-embed", input="a", encoding_format="float"
    )
    assert isinstance(floats.data[0].embedding[0], float)


def _wav() -> bytes:
    samples = b"\x00\x00" * 1600
    header = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    return header + b"data" + struct.pack("<I", len(samples)) + samples


def test_a_transcription_is_streamed_to_the_backend(proxy: ProxyRig) -> None:
    audio = io.BytesIO(_wav())
    audio.name = "clip.wav"
    result = proxy.openai().audio.transcriptions.create(
        model="whisper-fake", file=audio, language="et"
    )
    assert result.text == "the quick brown fox"
    form = proxy.backend.received[-1].form
    assert form["model"] == "whisper-fake"
    assert form["language"] == "et"


def test_responses_are_passed_through(proxy: ProxyRig) -> None:
    with proxy.http() as http:
        response = http.post(
            "/v1/responses", json={"model": "fake-chat", "input": "hi"}
        )
    assert response.status_code == 200, response.text
    assert proxy.backend.received[-1].path.endswith("/v1/responses")


@pytest.mark.parametrize(
    "path", ["/api/models", "/api/chat/completions", "/api/completions"]
)
def test_the_api_prefix_aliases_v1(proxy: ProxyRig, path: str) -> None:
    with proxy.http() as http:
        if path == "/api/models":
            response = http.get(path)
        elif path.endswith("chat/completions"):
            response = http.post(
                path, json={"model": "fake-chat", "messages": MESSAGES}
            )
        else:
            response = http.post(path, json={"model": "fake-chat", "prompt": "x"})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"].startswith("req_")


def test_the_sdk_works_with_an_api_base_url(proxy: ProxyRig) -> None:
    from openai import OpenAI

    client = OpenAI(
        base_url=proxy.server.url + "/api/", api_key=proxy.key, max_retries=0
    )
    reply = client.chat.completions.create(model="fake-chat", messages=MESSAGES)
    assert reply.choices[0].message.content


def test_image_parts_reach_a_vision_model_as_data_urls(proxy: ProxyRig) -> None:
    from apiproxy.catalog import catalog
    from catalog.models import Model

    Model.objects.filter(public_id="fake-chat").update(supports_vision=True)
    catalog.invalidate()
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    reply = proxy.openai().chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": content}]
    )
    assert reply.choices[0].message.content
    assert (
        proxy.backend.received[-1].json["messages"][0]["content"][1]["type"]
        == "image_url"
    )


def test_tools_and_response_format_pass_through(proxy: ProxyRig) -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object"}},
        }
    ]
    proxy.openai().chat.completions.create(
        model="fake-chat",
        messages=MESSAGES,
        tools=tools,
        tool_choice="auto",
        response_format={"type": "json_object"},
    )
    sent = proxy.backend.received[-1].json
    assert sent["tools"] == tools and sent["response_format"] == {"type": "json_object"}
