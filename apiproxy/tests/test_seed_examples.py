"""What the seed services' guides tell their users to send, sent as written
(only the base URL, the key and the image's host changed), through the real
proxy with the official openai SDK. The guides are in ../shared/seeds/; the
Tartu HPC guide's chat, image, thinking/non-thinking and embedding examples
are here; its transcription example is in test_proxy_endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from catalog.declared import model_capabilities_declare
from catalog.models import Model
from tests.fixtures_proxy import ProxyRig
from tests.mediaserver import MediaServer


@pytest.fixture
def tartu(proxy: ProxyRig, settings: Any) -> Iterator[tuple[ProxyRig, MediaServer]]:
    """fake-chat offered as the guide's models: qwen3.5-122b (vision,
    reasoning, the recommended parameters) and its non-thinking alias."""
    from apiproxy.catalog import catalog

    settings.MEDIA_FETCH = True
    settings.MEDIA_FETCH_ALLOW_NETWORKS = ["127.0.0.1/32"]
    Model.objects.filter(public_id="fake-chat").update(
        recommended_params={"temperature": 0.7, "top_p": 0.8, "presence_penalty": 1.5}
    )
    model_capabilities_declare(public_id="fake-chat", vision=True, reasoning=True)
    call_command(
        "addalias",
        "qwen3.5-122b",
        "fake-chat",
        "--params",
        '{"chat_template_kwargs": {"enable_thinking": true}}',
        stdout=StringIO(),
    )
    call_command(
        "addalias",
        "qwen3.5-122b-nonthinking",
        "fake-chat",
        "--params",
        '{"chat_template_kwargs": {"enable_thinking": false}}',
        stdout=StringIO(),
    )
    catalog.invalidate()
    with MediaServer() as media:
        yield proxy, media


def test_the_chat_example_with_the_recommended_parameters(
    tartu: tuple[ProxyRig, MediaServer],
) -> None:
    proxy, _ = tartu
    response = proxy.openai().chat.completions.create(
        model="qwen3.5-122b",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Explain the theory of relativity."},
        ],
        temperature=0.7,
        top_p=0.8,
        extra_body={"presence_penalty": 1.5},
        max_tokens=8,
    )
    assert response.choices[0].message.content
    assert response.model == "qwen3.5-122b"
    sent = proxy.backend.received[-1].json
    assert sent["chat_template_kwargs"] == {"enable_thinking": True}
    assert (sent["temperature"], sent["top_p"], sent["presence_penalty"]) == (
        0.7,
        0.8,
        1.5,
    )


def test_the_non_thinking_model_is_the_same_deployment_with_thinking_off(
    tartu: tuple[ProxyRig, MediaServer],
) -> None:
    proxy, _ = tartu
    listed = {m.id: m.model_extra for m in proxy.openai().models.list()}
    assert {"qwen3.5-122b", "qwen3.5-122b-nonthinking"} <= set(listed)
    # The aliases show their target's recommendations.
    assert listed["qwen3.5-122b"]["recommended_params"]["top_p"] == 0.8
    assert "reasoning" in listed["qwen3.5-122b-nonthinking"]["capabilities"]
    stream = proxy.openai().chat.completions.create(
        model="qwen3.5-122b-nonthinking",
        messages=[{"role": "user", "content": "Translate 'tere' to English."}],
        stream=True,
        max_tokens=4,
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    sent = proxy.backend.received[-1].json
    assert sent["model"] == "fake-chat"
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}


def test_the_image_example_with_a_remote_url(
    tartu: tuple[ProxyRig, MediaServer],
) -> None:
    proxy, media = tartu
    response = proxy.openai().chat.completions.create(
        model="qwen3.5-122b",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this image."},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"{media.url}/image.png"},
                    },
                ],
            }
        ],
        temperature=0.7,
        top_p=0.8,
        max_tokens=8,
    )
    assert response.choices[0].message.content
    part = proxy.backend.received[-1].json["messages"][0]["content"][1]
    assert part["image_url"]["url"].startswith("data:image/png;base64,")


def test_the_embedding_example_says_its_dimensions(
    tartu: tuple[ProxyRig, MediaServer],
) -> None:
    proxy, _ = tartu
    model_capabilities_declare(public_id="fake-embed", embedding_dimensions=8)
    from apiproxy.catalog import catalog

    catalog.invalidate()
    client = proxy.openai()
    response = client.embeddings.create(
        model="fake-embed",
        input="The University of Tartu HPC cluster provides GPU compute resources.",
    )
    vector = response.data[0].embedding
    listed = {m.id: m.model_extra for m in client.models.list()}
    assert listed["fake-embed"]["embedding_dimensions"] == len(vector) == 8
