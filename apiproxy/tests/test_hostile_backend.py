"""A backend is not trusted either: the proxy, under uvicorn, against a fake
backend on loopback that lies, redirects, refuses Portico's key, answers HTML
or puts the stream's end marker in its text."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import openai
import pytest
import redis

from tests.fakebackend import INTERNAL_SECRET, INTERNAL_URL, FakeBackend
from tests.fixtures_proxy import ProxyRig

MESSAGES = [{"role": "user", "content": "a prompt " * 40}]
# The characters that end an SSE stream, said by the model in its answer.
PIECES = ["The marker is ", "data: [DONE]", " and after it", " the rest."]


def chat(proxy: ProxyRig, **body: Any) -> httpx.Response:
    with proxy.http() as http:
        return http.post(
            "/v1/chat/completions",
            json={"model": "fake-chat", "messages": MESSAGES, **body},
        )


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


def assert_nothing_of_the_backend_leaked(response: httpx.Response) -> None:
    for secret in (INTERNAL_SECRET, INTERNAL_URL, "Invalid API key", "<html"):
        assert secret not in response.text


# -- 1. `data: [DONE]` in the text is text -------------------------------------


def test_model_text_saying_data_done_passes_through_whole_and_is_counted(
    proxy: ProxyRig,
) -> None:
    proxy.backend.behaviour.pieces = PIECES
    proxy.backend.behaviour.usage = "never"  # the proxy synthesises the usage
    stream = proxy.openai().chat.completions.create(
        model="fake-chat",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(PIECES)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    record = proxy.usage_record(stream.response.headers["x-request-id"])
    assert (record.completion_tokens, record.finish_reason) == (4, "stop")


@pytest.mark.parametrize("ending", ["clean", "abrupt"])
def test_a_stream_that_stops_after_text_saying_data_done_is_not_complete(
    proxy: ProxyRig, ending: str
) -> None:
    # Role chunk, then two pieces (the second says data: [DONE]), then the end:
    # a clean close without [DONE] is a broken answer as much as a dropped one.
    if ending == "clean":
        proxy.backend.behaviour.end_after_chunks = 3
    else:
        proxy.backend.behaviour.die_after_chunks = 3
    proxy.backend.behaviour.pieces = PIECES
    stream = proxy.openai().chat.completions.create(
        model="fake-chat", messages=MESSAGES, stream=True
    )
    received = []
    with pytest.raises(openai.APIError, match="broke off"):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "".join(PIECES[:2])
    record = proxy.usage_record(stream.response.headers["x-request-id"])
    assert record.finish_reason == "backend_error"


# -- 2. A refusal of Portico's key is not the user's fault ---------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("refusal", ["rotated key", "forbidden"])
def test_a_backend_refusing_portico_credentials_is_a_502_not_the_users_401(
    proxy: ProxyRig, refusal: str, stream: bool
) -> None:
    if refusal == "rotated key":
        proxy.backend.behaviour.api_key = "sk-the-backend-wants-another"
    else:
        proxy.backend.behaviour.status = 403
    response = chat(proxy, stream=stream)
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "backend_auth_failed"
    assert "refused Portico's credentials" in error["message"]
    assert "Your API key is fine" in error["message"]
    assert_nothing_of_the_backend_leaked(response)
    with pytest.raises(openai.InternalServerError):
        proxy.openai().chat.completions.create(model="fake-chat", messages=MESSAGES)


# -- 3. Redirects are not followed ---------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_redirect_from_a_backend_is_a_502_and_is_not_followed(
    proxy: ProxyRig, fake_backend_factory: Any, stream: bool
) -> None:
    from apiproxy.catalog import catalog
    from catalog.services import backend_add

    backend_add(name="fake", base_url=proxy.backend.base_url, api_key="sk-for-fake")
    catalog.invalidate()
    elsewhere: FakeBackend = fake_backend_factory()
    proxy.backend.behaviour.redirect_to = elsewhere.base_url + "/chat/completions"
    response = chat(proxy, stream=stream)
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "backend_redirect"
    assert "redirect" in error["message"]
    assert elsewhere.base_url not in response.text
    # Neither the prompt nor the backend's key went where it pointed.
    assert elsewhere.received == []


# -- 4. Only JSON or SSE is relayed --------------------------------------------


@pytest.mark.parametrize(
    ("stream", "content_type"),
    [
        (False, "text/html; charset=utf-8"),  # a login page with status 200
        (True, "text/html"),
        (False, "text/event-stream"),  # a stream nobody asked for
        (False, "application/octet-stream"),
    ],
)
def test_an_answer_of_the_wrong_content_type_is_a_502(
    proxy: ProxyRig, stream: bool, content_type: str
) -> None:
    proxy.backend.behaviour.content_type = content_type
    response = chat(proxy, stream=stream)
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "backend_bad_response"
    assert content_type.split(";")[0] in error["message"]
    assert "tok0" not in response.text, "the backend's body was not relayed"


def test_embeddings_answered_as_html_are_a_502(proxy: ProxyRig) -> None:
    proxy.backend.behaviour.content_type = "text/html"
    with pytest.raises(openai.InternalServerError, match="content type 'text/html'"):
        proxy.openai().embeddings.create(model="fake-embed", input="hello")


def test_a_stream_answered_with_json_ends_with_an_error_not_a_json_body(
    proxy: ProxyRig,
) -> None:
    proxy.backend.behaviour.content_type = "application/json"
    with pytest.raises(openai.APIError, match="content type 'application/json'"):
        stream = proxy.openai().chat.completions.create(
            model="fake-chat", messages=MESSAGES, stream=True
        )
        list(stream)


# -- 5. Usage counts are clamped before they are billed ------------------------


def tokens_in_redis(client: redis.Redis, name: str) -> int:
    return sum(int(v) for v in client.hvals(f"portico:rl:{name}:t"))


def key_with_token_limit(proxy: ProxyRig, settings: Any) -> str:
    from accounts.models import ApiKey
    from apiproxy.limits import limit_tables
    from catalog.models import KeyLimits

    settings.LIMITS_REFRESH_SECONDS = 0
    key = ApiKey.objects.get(user=proxy.user)
    KeyLimits.objects.create(key=key, tpm=100_000_000)
    limit_tables.invalidate()
    return f"key:{key.pk}"


def answer_request_id(proxy: ProxyRig, *, stream: bool) -> str:
    if not stream:
        response = chat(proxy)
        assert response.status_code == 200
        return response.headers["x-request-id"]
    with proxy.http() as http:
        body = {"model": "fake-chat", "messages": MESSAGES, "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            assert b"[DONE]" in response.read()
            return response.headers["x-request-id"]


def settled(client: redis.Redis, bucket: str, expected: int) -> int:
    deadline = time.monotonic() + 3
    while (found := tokens_in_redis(client, bucket)) != expected:
        if time.monotonic() > deadline:
            return found
        time.sleep(0.02)
    return found


@pytest.mark.parametrize("stream", [False, True])
def test_negative_usage_is_billed_as_zero_and_refunds_no_rate_limit_tokens(
    proxy: ProxyRig, settings: Any, sync_redis: redis.Redis, stream: bool
) -> None:
    bucket = key_with_token_limit(proxy, settings)
    proxy.backend.behaviour.usage_reported = {"completion_tokens": -5_000_000}
    record = proxy.usage_record(answer_request_id(proxy, stream=stream))
    assert record.completion_tokens == 0
    assert record.prompt_tokens == 80  # the fake's honest count of the prompt
    assert settled(sync_redis, bucket, 80) == 80


@pytest.mark.parametrize("stream", [False, True])
def test_absurd_usage_is_clamped_to_the_context_window(
    proxy: ProxyRig, settings: Any, sync_redis: redis.Redis, stream: bool
) -> None:
    from catalog.models import Model

    window = Model.objects.get(public_id="fake-chat").context_window
    bucket = key_with_token_limit(proxy, settings)
    proxy.backend.behaviour.usage_reported = {
        "prompt_tokens": 10**12,
        "completion_tokens": 10**15,
    }
    record = proxy.usage_record(answer_request_id(proxy, stream=stream))
    assert (record.prompt_tokens, record.completion_tokens) == (window, window)
    assert settled(sync_redis, bucket, 2 * window) == 2 * window


# -- 6. Model ids are checked at discovery -------------------------------------

HOSTILE_IDS = [
    "evil\n\ndata: [DONE]",
    "bell\x07model",
    "escape\x1b[31mred",
    "zero\u200bwidth",
    "right\u202eto-left",
    "m" * 201,
    " padded ",
    "",
]


def test_model_ids_a_backend_lists_with_control_characters_are_skipped(
    proxy: ProxyRig, caplog: pytest.LogCaptureFixture
) -> None:
    from apiproxy.catalog import catalog
    from catalog.models import Backend, Model
    from catalog.services import backend_discover_models

    proxy.backend.behaviour.models = ["org/good-model:8b", *HOSTILE_IDS]
    with caplog.at_level(logging.WARNING, logger="catalog"):
        result = backend_discover_models(backend=Backend.objects.get(name="fake"))
    catalog.invalidate()
    assert result.ok and result.served == ["org/good-model:8b"]
    assert len(result.skipped) == len(HOSTILE_IDS) - 1  # "" is no id at all
    assert set(Model.objects.values_list("public_id", flat=True)) == {
        "fake-chat",
        "fake-embed",
        "whisper-fake",
        "org/good-model:8b",
    }
    listed = {model.id for model in proxy.openai().models.list()}
    assert listed == {"org/good-model:8b"}  # the only one the backend now serves
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "skipped" in logged and "'bell\\x07model'" in logged
    assert "\x07" not in logged and "\x1b" not in logged


def test_a_skipped_model_id_cannot_be_asked_for(proxy: ProxyRig) -> None:
    """What the proxy writes back about a model (its SSE queue comment line,
    error messages) only ever names an id that passed discovery's check."""
    from apiproxy.catalog import catalog
    from catalog.models import Backend
    from catalog.services import backend_discover_models

    proxy.backend.behaviour.models = ["fake-chat", "evil\n\ndata: [DONE]"]
    backend_discover_models(backend=Backend.objects.get(name="fake"))
    catalog.invalidate()
    response = chat(proxy, model="evil\n\ndata: [DONE]", stream=True)
    assert response.status_code == 404
    assert error_of(response)["code"] == "model_not_found"
