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


def test_remote_image_urls_are_kept_for_portico_to_fetch() -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": "https://x.org/a.png"}},
                ],
            }
        ],
    }
    parsed = request_parse("chat/completions", json.dumps(body).encode())
    [ref] = parsed.media
    assert (ref.param, ref.kind, ref.url) == (
        "messages[0].content[1].image_url.url",
        "image",
        "https://x.org/a.png",
    )
    assert ref.holder is parsed.body["messages"][0]["content"][1]["image_url"]
    # An image counts as it always has, fetched or inline.
    assert parsed.prompt_estimate > 50


def test_with_media_fetch_off_remote_urls_are_refused(settings) -> None:  # type: ignore[no-untyped-def]
    settings.MEDIA_FETCH = False
    body = _user_says({"type": "image_url", "image_url": {"url": "https://x/a.png"}})
    error = error_of("chat/completions", json.dumps(body).encode())
    assert (error.status, error.param) == (400, "messages[0].content[0].image_url.url")
    assert "must be an inline data URL" in error.message


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
    ("endpoint", "body", "param", "kind"),
    [
        (
            "chat/completions",
            _user_says({"type": "video_url", "video_url": {"url": "http://h/v"}}),
            "messages[0].content[0].video_url.url",
            "video",
        ),
        (
            "chat/completions",
            _user_says({"type": "audio_url", "audio_url": {"url": "https://x/a.wav"}}),
            "messages[0].content[0].audio_url.url",
            "audio",
        ),
        (
            "chat/completions",
            _user_says({"type": "file", "file": {"file_url": "https://x/a.pdf"}}),
            "messages[0].content[0].file.file_url",
            "file",
        ),
        (
            "chat/completions",
            _user_says({"type": "image_url", "image_url": "https://x/a.png"}),
            "messages[0].content[0].image_url",
            "image",
        ),
        (
            "responses",
            {
                "model": "m",
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_image", "image_url": "https://x/a.png"}
                        ],
                    }
                ],
            },
            "input[0].content[0].image_url",
            "image",
        ),
        (
            "responses",
            {
                "model": "m",
                "input": [{"type": "input_file", "file_url": "https://x/x.pdf"}],
            },
            "input[0].file_url",
            "file",
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
def test_every_url_form_is_found_with_its_kind(endpoint, body, param, kind) -> None:
    [ref] = request_parse(endpoint, json.dumps(body).encode()).media
    assert (ref.param, ref.kind) == (param, kind)


@pytest.mark.parametrize(
    ("part", "param", "words"),
    [
        (
            {"type": "file", "file": {"file_url": "file:///etc/passwd"}},
            "messages[0].content[0].file.file_url",
            "only http and https",
        ),
        (
            {"type": "image_url", "image_url": "gopher://10.0.0.1/"},
            "messages[0].content[0].image_url",
            "only http and https",
        ),
        (
            {"type": "image_url", "image_url": {"url": "http://u:p@x.org/a.png"}},
            "messages[0].content[0].image_url.url",
            "user name or password",
        ),
        (
            {"type": "image_url", "image_url": {"url": "http://2130706433/"}},
            "messages[0].content[0].image_url.url",
            "non-standard form",
        ),
        (
            {"type": "text", "text": "x", "annotations": [{"url": "https://x/"}]},
            "messages[0].content[0].annotations[0].url",
            "image, video, audio and file parts only",
        ),
    ],
)
def test_urls_portico_would_never_fetch_are_refused_at_parse(
    part, param, words
) -> None:
    error = error_of("chat/completions", json.dumps(_user_says(part)).encode())
    assert (error.status, error.param) == (400, param)
    assert words in error.message
    assert "data URL" in error.message


def test_remote_urls_are_capped_per_request(settings) -> None:  # type: ignore[no-untyped-def]
    settings.MEDIA_FETCH_MAX_URLS = 2
    part = {"type": "image_url", "image_url": {"url": "https://x/a.png"}}
    inline = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
    assert len(parse("chat/completions", _user_says(inline, part, part)).media) == 2
    error = error_of(
        "chat/completions", json.dumps(_user_says(part, inline, part, part)).encode()
    )
    assert error.param == "messages[0].content[3].image_url.url"
    assert "at most 2 remote media URLs" in error.message


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
