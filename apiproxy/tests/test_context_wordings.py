"""Every backend's refusal of an over-long prompt becomes one error: a 400
`context_length_exceeded` naming the prompt's parameter, in the words Portico
uses when it refuses such a prompt itself, with the backend's figures."""

from __future__ import annotations

import json

import openai
import pytest

from apiproxy.contextwords import context_refusal_read
from apiproxy.errors import upstream_error_translate
from apiproxy.tests.test_context_fit import said
from tests.fakebackend_streams import context_refusal_body
from tests.fixtures_proxy import ProxyRig

FITS_NOT = (
    "This model's maximum context length is 2048 tokens. Your messages come to "
    "3000 tokens. Shorten them."
)


@pytest.mark.parametrize(
    ("style", "message"),
    [
        ("vllm", FITS_NOT),
        ("vllm-engine", FITS_NOT),
        ("sglang", FITS_NOT),
        ("llamacpp", FITS_NOT),
        # llama.cpp, older: no figures in the words, but in n_prompt_tokens/n_ctx.
        ("llamacpp-old", FITS_NOT),
        (
            "ollama",
            "This model's maximum context length is 8192 tokens. Your messages "
            "come to more than that. Shorten them.",
        ),
        (
            "ollama-prompt",
            "This model's maximum context length is 8192 tokens. Your messages "
            "come to 952 tokens more than that. Shorten them.",
        ),
    ],
)
def test_each_servers_words_become_portico_s(style: str, message: str) -> None:
    status, body = context_refusal_body(style, 3000, 2048)
    error = upstream_error_translate(
        status, json.dumps(body).encode(), model="m", window=8192
    )
    assert (error.status, error.code, error.param) == (
        400,
        "context_length_exceeded",
        "messages",
    )
    assert error.message == message


@pytest.mark.parametrize("style", ["vllm-total", "sglang-total"])
def test_a_completion_that_does_not_fit_is_told_apart(style: str) -> None:
    status, body = context_refusal_body(style, 100, 2048, asked=2000)
    error = upstream_error_translate(status, json.dumps(body).encode(), model="m")
    assert error.message == (
        "This model's maximum context length is 2048 tokens. Your messages come "
        "to 100 tokens and max_tokens asks for 2000 more. Shorten the messages or "
        "lower max_tokens."
    )


@pytest.mark.parametrize(
    ("endpoint", "param", "words"),
    [
        ("completions", "prompt", "Your prompt comes to 3000 tokens. Shorten it."),
        ("responses", "input", "Your input comes to 3000 tokens. Shorten it."),
        ("embeddings", "input", "Your input comes to 3000 tokens. Shorten it."),
    ],
)
def test_the_parameter_is_the_endpoints_prompt(
    endpoint: str, param: str, words: str
) -> None:
    status, body = context_refusal_body("llamacpp", 3000, 2048)
    error = upstream_error_translate(
        status, json.dumps(body).encode(), model="m", endpoint=endpoint
    )
    assert error.param == param
    assert error.message.endswith(words)


@pytest.mark.parametrize(
    ("message", "figures"),
    [
        # vLLM, newest.
        (
            "This model's maximum context length is 262144 tokens. However, you "
            "requested 4096 output tokens and your prompt contains at least 258049 "
            "input tokens, for a total of at least 262145 tokens.",
            (262144, 258049, True, 4096),
        ),
        # vLLM, older.
        (
            "This model's maximum context length is 2048 tokens. However, you "
            "requested 3000 tokens in the messages, Please reduce the length of the "
            "messages.",
            (2048, 3000, False, None),
        ),
        (
            "'max_tokens' or 'max_completion_tokens' is too large: 2000. This "
            "model's maximum context length is 2048 tokens and your request has 100 "
            "input tokens (2000 > 2048 - 100).",
            (2048, 100, False, 2000),
        ),
        (
            "The prompt (total length 3000) is too long to fit into the model "
            "(context length 2048). Make sure that `max_model_len` is no smaller",
            (2048, 3000, False, None),
        ),
        # vLLM, completions.
        (
            "This model's maximum context length is 2048 tokens, however you "
            "requested 2100 tokens (100 in your prompt; 2000 for the completion).",
            (2048, 100, False, 2000),
        ),
        # SGLang's scheduler; SGLang's figures as floats.
        (
            "Input length (3000 tokens) exceeds the maximum allowed length (2048 "
            "tokens).",
            (2048, 3000, False, None),
        ),
        (
            "Requested token count exceeds the model's maximum context length of "
            "2048 tokens. You requested a total of 2100.0 tokens: 100 tokens from "
            "the input messages and 2000.0 tokens for the completion.",
            (2048, 100, False, 2000),
        ),
        # llama.cpp's embeddings (an HTTP 500), measured on the demo backend.
        (
            "input (3001 tokens) is too large to process. increase the physical "
            "batch size (current batch size: 2048)",
            (2048, 3001, False, None),
        ),
        ("the input length exceeds the context length", (None, None, False, None)),
    ],
)
def test_the_figures_are_read_from_every_wording(
    message: str, figures: tuple[object, ...]
) -> None:
    found = context_refusal_read(message)
    assert found is not None
    assert (found.window, found.tokens, found.at_least, found.completion) == figures


@pytest.mark.parametrize(
    "message",
    [
        "Invalid role: wizard",
        "'temperature' must be between 0 and 2",
        "messages: the context of this conversation is unclear",
    ],
)
def test_other_refusals_are_not_taken_for_context_ones(message: str) -> None:
    assert context_refusal_read(message) is None
    body = json.dumps({"error": {"message": message, "code": 400}}).encode()
    assert upstream_error_translate(400, body, model="m").code is None


def test_llamacpps_embeddings_500_is_a_400_for_the_client() -> None:
    body = {
        "error": {
            "code": 500,
            "message": "input (3001 tokens) is too large to process. increase the "
            "physical batch size (current batch size: 2048)",
            "type": "server_error",
        }
    }
    error = upstream_error_translate(
        500, json.dumps(body).encode(), model="m", endpoint="embeddings"
    )
    assert (error.status, error.code, error.param) == (
        400,
        "context_length_exceeded",
        "input",
    )


@pytest.mark.parametrize(
    "style",
    [
        "vllm",
        "vllm-engine",
        "sglang",
        "llamacpp",
        "llamacpp-old",
        "ollama",
        "ollama-prompt",
    ],
)
def test_through_the_proxy_each_refusal_reaches_the_sdk_as_one_400(
    proxy: ProxyRig, style: str
) -> None:
    proxy.backend.behaviour.tokenizer = ""
    proxy.backend.behaviour.context_window = 10
    proxy.backend.behaviour.context_wording = style
    client = proxy.openai(max_retries=2)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "word " * 30}]
        )
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "messages"
    assert said(caught.value).startswith("This model's maximum context length is")
    assert len(proxy.backend.requests("/v1/chat/completions")) == 1, "never retried"
