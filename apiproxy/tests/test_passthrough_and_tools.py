"""What OpenAI-compatible hosts document as supported (mittwald's table: n,
logprobs, top_logprobs, logit_bias, seed, parallel_tool_calls,
response_format, stream_options) reaches the backend exactly as sent, and
tool calls stream through unchanged, counted, and round-trip with the SDK."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures_proxy import ProxyRig

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        },
    },
}


@pytest.mark.parametrize(
    "params",
    [
        {"n": 3},
        {"logprobs": True, "top_logprobs": 5},
        {"logit_bias": {"1234": -100, "50256": 5.5}},
        {"seed": 42},
        {"parallel_tool_calls": False, "tools": [WEATHER_TOOL]},
        {"response_format": {"type": "json_object"}},
        {"response_format": SCHEMA},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"stream": True, "stream_options": {"include_usage": False, "x_extra": 1}},
    ],
    ids=lambda params: "+".join(params),
)
def test_documented_parameters_reach_the_backend_as_sent(
    proxy: ProxyRig, params: dict[str, Any]
) -> None:
    body = {"model": "fake-chat", "messages": MESSAGES, **params}
    with proxy.http() as http:
        response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    received = proxy.backend.last("/v1/chat/completions").json
    expected = dict(body)
    if params.get("stream"):
        # The one addition: usage is always asked for (and removed again
        # when the client did not want it); the client's own options stay.
        expected["stream_options"] = {**params["stream_options"], "include_usage": True}
    assert received == expected


CALLS = [{"name": "weather", "arguments": json.dumps({"city": "Paris"})}]


def test_tool_call_deltas_are_relayed_byte_for_byte_and_counted(
    proxy: ProxyRig,
) -> None:
    proxy.backend.behaviour.tool_calls = CALLS
    body = {
        "model": "fake-chat",
        "messages": MESSAGES,
        "tools": [WEATHER_TOOL],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with proxy.http() as http:
        relayed = http.post("/v1/chat/completions", json=body)
    sent = proxy.backend.last("/v1/chat/completions").sent
    assert relayed.content == sent
    assert b'"tool_calls":[{"index":0,"id":"call_0"' in sent
    record = proxy.usage_record(relayed.headers["x-request-id"])
    assert record.finish_reason == "tool_calls"
    assert record.completion_tokens == 3  # the arguments, in 3 pieces


def test_tool_call_deltas_are_counted_when_the_backend_reports_no_usage(
    proxy: ProxyRig,
) -> None:
    proxy.backend.behaviour.tool_calls = CALLS
    proxy.backend.behaviour.usage = "never"
    body = {"model": "fake-chat", "messages": MESSAGES, "stream": True}
    with proxy.http() as http:
        relayed = http.post("/v1/chat/completions", json=body)
    record = proxy.usage_record(relayed.headers["x-request-id"])
    assert record.usage_source == "counted"
    assert record.completion_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_round_trip_with_the_sdk(proxy: ProxyRig, stream: bool) -> None:
    proxy.backend.script({"tool_calls": CALLS}, {"text": "It is sunny in Paris."})
    client = proxy.openai()
    messages: list[dict[str, Any]] = list(MESSAGES)
    if stream:
        call = _streamed_tool_call(client, messages)
    else:
        first = client.chat.completions.create(
            model="fake-chat", messages=messages, tools=[WEATHER_TOOL]
        )
        assert first.choices[0].finish_reason == "tool_calls"
        call = first.choices[0].message.tool_calls[0]
        call = {
            "id": call.id,
            "name": call.function.name,
            "args": call.function.arguments,
        }
    assert (call["name"], json.loads(call["args"])) == ("weather", {"city": "Paris"})
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["args"]},
                }
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call["id"], "content": "sunny"})
    final = client.chat.completions.create(
        model="fake-chat", messages=messages, tools=[WEATHER_TOOL]
    )
    assert final.choices[0].message.content == "It is sunny in Paris."
    received = proxy.backend.last("/v1/chat/completions").json
    assert received["messages"] == messages, "the tool turn reached the backend"


def _streamed_tool_call(client: Any, messages: list[dict[str, Any]]) -> dict[str, str]:
    stream = client.chat.completions.create(
        model="fake-chat", messages=messages, tools=[WEATHER_TOOL], stream=True
    )
    call = {"id": "", "name": "", "args": ""}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                call["id"] = delta.id or call["id"]
                call["name"] = delta.function.name or call["name"]
                call["args"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    return call
