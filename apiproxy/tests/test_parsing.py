"""Request validation: OpenAI-style 400s naming the field, never 422."""

from __future__ import annotations

import json

import pytest

from apiproxy.errors import ProxyError
from apiproxy.parsing import request_parse


def parse(endpoint: str, body: object) -> object:
    return request_parse(endpoint, json.dumps(body).encode())


def error_of(endpoint: str, raw: bytes) -> ProxyError:
    with pytest.raises(ProxyError) as caught:
        request_parse(endpoint, raw)
    return caught.value


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": 3, "messages": []}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": [{"content": "hi"}]}, "messages[0].role"),
        (
            {"model": "m", "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "stream": "yes",
            },
            "stream",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "temperature": 9,
            },
            "temperature",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 0,
            },
            "max_tokens",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "stream_options": {"include_usage": True},
            },
            "stream_options",
        ),
    ],
)
def test_it_names_the_bad_field(body: dict[str, object], param: str) -> None:
    error = error_of("chat/completions", json.dumps(body).encode())
    assert error.status == 400
    assert error.param == param
    assert json.loads(error.body())["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("raw", [b"", b"{", b"[1,2]", b"\xff\xfe", b"null"])
def test_it_refuses_bodies_that_are_not_json_objects(raw: bytes) -> None:
    assert error_of("chat/completions", raw).status == 400


def test_it_drops_fields_that_would_redirect_traffic() -> None:
    parsed = parse(
        "chat/completions",
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "api_base": "http://evil",
            "api_key": "sk-other",
            "extra_headers": {"x": "y"},
            "tools": [],
        },
    )
    assert set(parsed.body) == {"model", "messages", "tools"}


def test_it_refuses_remote_image_urls_with_a_clear_message() -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "http://10.0.0.1/x.png"}}
                ],
            }
        ],
    }
    error = error_of("chat/completions", json.dumps(body).encode())
    assert error.status == 400
    assert "data URL" in error.message


def test_it_accepts_image_data_urls_and_counts_them() -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,AAAA"},
                    },
                ],
            }
        ],
    }
    assert parse("chat/completions", body).prompt_estimate > 50


def test_embeddings_need_input_and_a_known_encoding() -> None:
    assert parse("embeddings", {"model": "e", "input": ["a", "b"]}).stream is False
    error = error_of(
        "embeddings", b'{"model": "e", "input": "a", "encoding_format": "hex"}'
    )
    assert error.param == "encoding_format"
    assert error_of("embeddings", b'{"model": "e"}').param == "input"


def test_completions_accept_strings_and_token_arrays() -> None:
    assert parse("completions", {"model": "m", "prompt": [1, 2, 3]}).prompt_estimate
    assert error_of("completions", b'{"model": "m", "prompt": {}}').param == "prompt"


def _user_says(*parts: dict) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": list(parts)}]}


@pytest.mark.parametrize(
    ("endpoint", "body", "param"),
    [
        (
            "chat/completions",
            _user_says(
                {"type": "video_url", "video_url": {"url": "http://10.0.0.1/v"}}
            ),
            "messages[0].content[0].video_url.url",
        ),
        (
            "chat/completions",
            _user_says({"type": "audio_url", "audio_url": {"url": "https://x/a.wav"}}),
            "messages[0].content[0].audio_url.url",
        ),
        (
            "chat/completions",
            _user_says({"type": "file", "file": {"file_url": "file:///etc/passwd"}}),
            "messages[0].content[0].file.file_url",
        ),
        (
            "chat/completions",
            _user_says({"type": "image_url", "image_url": "gopher://10.0.0.1/"}),
            "messages[0].content[0].image_url",
        ),
        (
            "responses",
            {
                "model": "m",
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "input_image",
                                "image_url": "http://169.254.169.254/",
                            }
                        ],
                    }
                ],
            },
            "input[0].content[0].image_url",
        ),
        (
            "responses",
            {
                "model": "m",
                "input": [{"type": "input_file", "file_url": "https://intranet/x.pdf"}],
            },
            "input[0].file_url",
        ),
    ],
    ids=[
        "video_url",
        "audio_url",
        "file_url",
        "image_url string",
        "input_image",
        "input_file",
    ],
)
def test_every_url_form_is_refused_unless_inline(endpoint, body, param) -> None:
    error = error_of(endpoint, json.dumps(body).encode())
    assert (error.status, error.param) == (400, param)
    assert "data URL" in error.message


def test_inline_media_of_every_form_passes() -> None:
    data = "data:application/octet-stream;base64,AAAA"
    body = _user_says(
        {"type": "video_url", "video_url": {"url": data}},
        {"type": "file", "file": {"file_data": data, "file_url": data}},
    )
    assert parse("chat/completions", body).model == "m"
    responses = {"model": "m", "input": [{"type": "input_image", "image_url": data}]}
    assert parse("responses", responses).model == "m"


def test_deeply_nested_json_is_a_400_not_a_crash() -> None:
    nested = b'{"model": "m", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    error = error_of("chat/completions", nested)
    assert error.status == 400
    assert "nested too deeply" in error.message
