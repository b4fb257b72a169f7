"""The context check refuses only prompts that cannot fit, never on a guess:
by a proven lower bound or the backend's own tokenizer, with the same error
the backend's own refusal is turned into; max_tokens is never shortened."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from apiproxy import tokenize
from apiproxy.contextfit import MAX_BYTES_PER_TOKEN, prompt_size
from tests.fixtures_proxy import ProxyRig

CHAT = "/v1/chat/completions"


def window_set(tokens: int, **fields: Any) -> None:
    from apiproxy.catalog import catalog
    from catalog.models import Model

    Model.objects.filter(public_id="fake-chat").update(context_window=tokens, **fields)
    catalog.invalidate()


def words(count: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": "word " * count}]


def posts(proxy: ProxyRig) -> list[Any]:
    """What the backend was asked (not the catalog's model list)."""
    return [r for r in proxy.backend.requests() if r.method == "POST"]


def said(error: openai.APIStatusError) -> str:
    """The message of the error as sent (the SDK prefixes its own)."""
    return error.body["message"]  # type: ignore[index]


def refusal(proxy: ProxyRig, **request: Any) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.openai().chat.completions.create(model="fake-chat", **request)
    assert caught.value.code == "context_length_exceeded"
    return caught.value


def test_a_prompt_that_fits_passes_although_chars_over_four_do_not(
    proxy: ProxyRig,
) -> None:
    window_set(2048)
    # 8,500 characters: "about 2,126 tokens" by the old estimate; 1,700 really.
    reply = proxy.openai().chat.completions.create(
        model="fake-chat", messages=words(1700), max_tokens=300
    )
    assert reply.usage.prompt_tokens == 1700
    sent = proxy.backend.last(CHAT).json
    assert sent["max_tokens"] == 300, "never shortened to what an estimate left"
    assert proxy.backend.last("/tokenize").json["messages"] == words(1700)


def test_max_tokens_is_passed_on_as_asked_even_over_the_window(
    proxy: ProxyRig,
) -> None:
    window_set(2048, max_output_tokens=16)
    proxy.openai().chat.completions.create(
        model="fake-chat",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=100_000,
        extra_body={"max_completion_tokens": 50_000},
    )
    sent = proxy.backend.last(CHAT).json
    assert (sent["max_tokens"], sent["max_completion_tokens"]) == (100_000, 50_000)


def test_a_short_prompt_costs_no_tokenizer_round_trip(proxy: ProxyRig) -> None:
    proxy.openai().chat.completions.create(model="fake-chat", messages=words(50))
    assert proxy.backend.requests("/tokenize") == []


def test_the_backends_count_refuses_a_prompt_over_the_window_before_it_is_sent(
    proxy: ProxyRig,
) -> None:
    window_set(100)
    error = refusal(proxy, messages=words(150))
    assert error.param == "messages"
    assert said(error) == (
        "This model's maximum context length is 100 tokens. Your messages come "
        "to 150 tokens. Shorten them."
    )
    assert proxy.backend.requests(CHAT) == []


@pytest.mark.parametrize("tokenizer", ["vllm", "llamacpp"])
def test_portico_and_the_backend_refuse_in_the_same_words(
    proxy: ProxyRig, tokenizer: str
) -> None:
    from apiproxy.tokenize import tokenizers

    window_set(100)
    proxy.backend.behaviour.context_window = 100
    proxy.backend.behaviour.tokenizer = tokenizer
    by_portico = refusal(proxy, messages=words(150))
    assert proxy.backend.requests(CHAT) == []
    proxy.backend.behaviour.tokenizer = ""  # now only the backend can tell
    tokenizers.clear()
    by_backend = refusal(proxy, messages=words(150))
    assert len(proxy.backend.requests(CHAT)) == 1
    assert said(by_backend) == said(by_portico)
    assert by_backend.param == by_portico.param == "messages"


def test_the_smaller_of_the_catalogs_and_the_backends_window_holds(
    proxy: ProxyRig,
) -> None:
    window_set(1000)  # the catalog says more than vLLM's /tokenize reports
    proxy.backend.behaviour.context_window = 100
    error = refusal(proxy, messages=words(300))
    assert said(error).startswith("This model's maximum context length is 100 ")
    assert proxy.backend.requests(CHAT) == []


def test_a_backend_without_a_tokenizer_is_asked_once_then_remembered(
    proxy: ProxyRig,
) -> None:
    window_set(100)
    proxy.backend.behaviour.tokenizer = ""
    client = proxy.openai()
    for _ in range(3):
        client.chat.completions.create(model="fake-chat", messages=words(80))
    # Unknown software: vLLM's dialect, then llama.cpp's, once each.
    asked = [r.path for r in posts(proxy) if r.path != CHAT]
    assert asked == ["/tokenize", "/apply-template"]
    assert len(proxy.backend.requests(CHAT)) == 3


def test_a_slow_tokenizer_lets_the_request_through(
    proxy: ProxyRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokenize, "TOKENIZE_TIMEOUT_SECONDS", 0.2)
    window_set(100)
    proxy.backend.behaviour.tokenizer_delay = 1.0
    proxy.backend.behaviour.context_window = 100
    # Let through; the backend refuses it itself, in the same words.
    error = refusal(proxy, messages=words(150))
    assert "Your messages come to 150 tokens" in said(error)
    assert len(proxy.backend.requests(CHAT)) == 1


def test_the_lower_bound_refuses_a_huge_prompt_without_asking_anyone(
    proxy: ProxyRig,
) -> None:
    window_set(100)
    text = "x" * (101 * MAX_BYTES_PER_TOKEN)
    error = refusal(proxy, messages=[{"role": "user", "content": text}])
    assert "Your messages come to at least 101 tokens" in said(error)
    assert posts(proxy) == []


def test_token_ids_are_counted_exactly(proxy: ProxyRig) -> None:
    window_set(100)
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.openai().completions.create(model="fake-chat", prompt=[7] * 101)
    assert caught.value.param == "prompt"
    assert said(caught.value) == (
        "This model's maximum context length is 100 tokens. Your prompt comes to "
        "101 tokens. Shorten it."
    )
    proxy.openai().completions.create(model="fake-chat", prompt=[7] * 99)


def test_a_responses_input_is_counted_by_the_tokenizer_too(proxy: ProxyRig) -> None:
    window_set(100)
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.openai().responses.create(model="fake-chat", input="word " * 150)
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "input"
    assert proxy.backend.requests("/v1/responses") == []


def test_an_endpoint_the_model_lacks_is_never_retried(proxy: ProxyRig) -> None:
    with proxy.http() as http:
        response = http.post(
            "/v1/embeddings", json={"model": "fake-chat", "input": "x"}
        )
    assert response.status_code == 501
    assert response.headers["x-should-retry"] == "false"


# -- the bounds themselves ------------------------------------------------------


def test_the_upper_estimate_counts_bytes_and_the_lower_only_kept_text() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "é" * 100},  # 200 bytes
            {"role": "assistant", "content": "a" * 5000},  # templates may drop it
            {"role": "user", "content": [{"type": "text", "text": "b" * 600}]},
        ]
    }
    size = prompt_size("chat/completions", body)
    assert size.upper >= 200 + 5000 + 600
    assert size.lower == 800 // MAX_BYTES_PER_TOKEN
    assert not size.media


def test_media_is_allowed_for_but_never_sent_to_the_tokenizer() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
    size = prompt_size(
        "chat/completions", {"messages": [{"role": "user", "content": [image]}]}
    )
    assert size.media and size.upper > 1000


def test_a_caller_over_their_rate_limit_never_reaches_the_tokenizer(
    proxy: ProxyRig,
) -> None:
    from accounts.models import ApiKey
    from apiproxy.limits import limit_tables
    from catalog.models import KeyLimits

    window_set(2048)
    KeyLimits.objects.create(key=ApiKey.objects.get(user=proxy.user), rpm=1)
    limit_tables.invalidate()
    client = proxy.openai(max_retries=0)
    client.chat.completions.create(model="fake-chat", messages=words(1700))
    asked = len(proxy.backend.requests("/tokenize"))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fake-chat", messages=words(1700))
    assert len(proxy.backend.requests("/tokenize")) == asked


def test_a_prompt_refused_as_too_long_costs_no_tokens_of_the_rate_limit(
    proxy: ProxyRig,
) -> None:
    from accounts.models import ApiKey
    from apiproxy.limits import limit_tables
    from catalog.models import KeyLimits

    window_set(100)
    KeyLimits.objects.create(key=ApiKey.objects.get(user=proxy.user), tpm=1000)
    limit_tables.invalidate()
    client = proxy.openai(max_retries=0)
    refusal(proxy, messages=words(150))
    # 150 words charged and not given back would leave 850 tokens: this
    # request's own estimate then shows what is left.
    reply = client.chat.completions.with_raw_response.create(
        model="fake-chat", messages=words(10), max_tokens=1
    )
    assert int(reply.headers["x-ratelimit-remaining-tokens"]) > 950
