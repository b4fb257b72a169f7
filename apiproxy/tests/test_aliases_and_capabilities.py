"""Aliases, request defaults and capability refusals through the real proxy,
with the official openai SDK, against the fake backend on loopback."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from typing import Any

import openai
import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from catalog.models import Model
from tests.fixtures_proxy import ProxyRig

MESSAGES = [{"role": "user", "content": "Say something."}]
NO_THINKING = {"chat_template_kwargs": {"enable_thinking": False}}
TINY_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42"
    "mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _catalog_fresh() -> None:
    from apiproxy.catalog import catalog

    catalog.invalidate()


def _addalias(*args: str) -> str:
    out = StringIO()
    call_command("addalias", *args, stdout=out)
    _catalog_fresh()
    return out.getvalue()


def test_an_alias_is_listed_as_its_own_model_and_sends_its_defaults(
    proxy: ProxyRig,
) -> None:
    printed = _addalias(
        "fake-chat-nonthinking",
        "fake-chat",
        "--params",
        '{"chat_template_kwargs": {"enable_thinking": false}, "temperature": 0.3}',
    )
    assert "Created alias fake-chat-nonthinking -> fake-chat" in printed
    client = proxy.openai()
    listed = {m.id: m.model_extra for m in client.models.list()}
    assert "fake-chat-nonthinking" in listed
    alias, target = listed["fake-chat-nonthinking"], listed["fake-chat"]
    assert alias["capabilities"] == target["capabilities"]
    assert alias["context_window"] == target["context_window"]

    raw = client.chat.completions.with_raw_response.create(
        model="fake-chat-nonthinking",
        messages=MESSAGES,
        max_tokens=3,
        temperature=0.9,
        extra_body={"chat_template_kwargs": {"custom": 1}},
    )
    completion = raw.parse()
    assert completion.model == "fake-chat-nonthinking"
    sent = proxy.backend.received[-1].json
    # The backend is asked for its own model name; the request's own values
    # win, nested objects are merged.
    assert sent["model"] == "fake-chat"
    assert sent["temperature"] == 0.9
    assert sent["chat_template_kwargs"] == {"custom": 1, "enable_thinking": False}
    record = proxy.usage_record(raw.headers["x-request-id"])
    assert record.model == "fake-chat-nonthinking"


def test_an_alias_keeps_its_own_access_and_quota_weight(proxy: ProxyRig) -> None:
    Group.objects.create(name="thinkers")
    _addalias(
        "fake-chat-premium", "fake-chat", "--group", "thinkers", "--quota-weight", "2.5"
    )
    client = proxy.openai()
    assert "fake-chat-premium" not in {m.id for m in client.models.list()}
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="fake-chat-premium", messages=MESSAGES)
    proxy.user.groups.add(Group.objects.get(name="thinkers"))
    from accounts.services import apikey_cache_invalidate

    apikey_cache_invalidate()
    raw = client.chat.completions.with_raw_response.create(
        model="fake-chat-premium", messages=MESSAGES, max_tokens=2
    )
    record = proxy.usage_record(raw.headers["x-request-id"])
    assert record.model == "fake-chat-premium"
    tokens = record.prompt_tokens + record.completion_tokens
    assert record.weighted_tokens == int(Decimal("2.5") * tokens)


def test_a_system_prompt_prefix_goes_before_the_system_message(
    proxy: ProxyRig,
) -> None:
    Model.objects.filter(public_id="fake-chat").update(
        system_prompt_prefix="You serve researchers."
    )
    _catalog_fresh()
    client = proxy.openai()
    client.chat.completions.create(model="fake-chat", messages=MESSAGES, max_tokens=2)
    assert proxy.backend.received[-1].json["messages"][0] == {
        "role": "system",
        "content": "You serve researchers.",
    }
    client.chat.completions.create(
        model="fake-chat",
        messages=[{"role": "system", "content": "Be brief."}, *MESSAGES],
        max_tokens=2,
    )
    sent = proxy.backend.received[-1].json["messages"]
    assert sent[0]["content"] == "You serve researchers.\n\nBe brief."
    assert len(sent) == 2


def test_addalias_refuses_what_cannot_work(proxy: ProxyRig) -> None:
    with pytest.raises(CommandError, match="no model 'nope'"):
        _addalias("x-alias", "nope")
    with pytest.raises(CommandError, match="not an alias"):
        _addalias("fake-embed", "fake-chat")
    with pytest.raises(CommandError, match="JSON object"):
        _addalias("x-alias", "fake-chat", "--params", "[1]")
    _addalias("x-alias", "fake-chat")
    with pytest.raises(CommandError, match="itself an alias"):
        _addalias("y-alias", "x-alias")
    with pytest.raises(CommandError, match="No such group"):
        _addalias("x-alias", "fake-chat", "--group", "ghosts")


def test_an_alias_goes_when_its_target_is_disabled(proxy: ProxyRig) -> None:
    _addalias("fake-chat-alias", "fake-chat")
    assert "fake-chat-alias" in {m.id for m in proxy.openai().models.list()}
    Model.objects.filter(public_id="fake-chat").update(enabled=False)
    _catalog_fresh()
    assert "fake-chat-alias" not in {m.id for m in proxy.openai().models.list()}


def _capabilities_set(**flags: bool) -> None:
    Model.objects.filter(public_id="fake-chat").update(
        capabilities_locked=True, **{f"supports_{k}": v for k, v in flags.items()}
    )
    _catalog_fresh()


TOOLS = [
    {
        "type": "function",
        "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
    }
]
SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "x", "schema": {"type": "object"}},
}


@pytest.mark.parametrize(
    ("flag", "request_extra", "param"),
    [
        ("tools", {"tools": TOOLS}, "tools"),
        ("json_schema", {"response_format": SCHEMA}, "response_format"),
        (
            "vision",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": TINY_PNG}},
                        ],
                    }
                ]
            },
            "messages[0].content[1]",
        ),
        (
            "audio",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "input_audio",
                                "input_audio": {"data": "UklGRg==", "format": "wav"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
    ],
)
def test_a_capability_the_model_lacks_is_refused_before_the_backend(
    proxy: ProxyRig, flag: str, request_extra: dict[str, Any], param: str
) -> None:
    _capabilities_set(**{flag: False})
    before = len(proxy.backend.received)
    request: dict[str, Any] = {"model": "fake-chat", "messages": MESSAGES}
    request.update(request_extra)
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.openai().chat.completions.create(**request)
    error = caught.value.body
    assert caught.value.status_code == 400
    assert error["param"] == param and error["code"] == "unsupported_parameter"
    assert "fake-chat" in error["message"] and param in error["message"]
    assert len(proxy.backend.received) == before
    # Marked as capable, the same request goes through.
    _capabilities_set(**{flag: True})
    proxy.openai().chat.completions.create(**request, max_tokens=2)
    assert len(proxy.backend.received) == before + 1


def test_models_list_says_what_each_model_can_do(proxy: ProxyRig) -> None:
    Model.objects.filter(public_id="fake-chat").update(
        supports_reasoning=True,
        recommended_params={"temperature": 0.6, "top_p": 0.95},
    )
    Model.objects.filter(public_id="fake-embed").update(embedding_dimensions=8)
    _catalog_fresh()
    listed = {m.id: m.model_extra for m in proxy.openai().models.list()}
    chat = listed["fake-chat"]
    assert {"chat", "tools", "json_schema", "reasoning"} <= set(chat["capabilities"])
    assert chat["recommended_params"] == {"temperature": 0.6, "top_p": 0.95}
    assert chat["ready"] is True and chat["load_seconds"] is None
    assert listed["fake-embed"]["embedding_dimensions"] == 8
    assert listed["fake-embed"]["capabilities"] == ["embeddings"]
