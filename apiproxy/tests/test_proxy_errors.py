"""Errors clients can act on: the OpenAI envelope, the right status, nothing
internal reflected, and the SDK raising the right exception."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.fakebackend import INTERNAL_SECRET, INTERNAL_URL
from tests.fixtures_proxy import ProxyRig

MESSAGES = [{"role": "user", "content": "hi"}]


def envelope(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert response.headers["x-request-id"].startswith("req_")
    return body["error"]


def post(proxy: ProxyRig, path: str, **kwargs: object) -> httpx.Response:
    with proxy.http() as http:
        return http.post(path, **kwargs)


def test_invalid_json_is_a_400(proxy: ProxyRig) -> None:
    response = post(proxy, "/v1/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert envelope(response)["type"] == "invalid_request_error"


def test_a_missing_field_is_a_400_naming_it_never_a_422(proxy: ProxyRig) -> None:
    response = post(proxy, "/v1/chat/completions", json={"messages": MESSAGES})
    assert response.status_code == 400
    assert envelope(response)["param"] == "model"


def test_a_body_over_the_limit_is_a_413(proxy: ProxyRig, settings) -> None:
    settings.MAX_REQUEST_BYTES = 2048
    response = post(
        proxy,
        "/v1/chat/completions",
        json={
            "model": "fake-chat",
            "messages": [{"role": "user", "content": "x" * 4000}],
        },
    )
    assert response.status_code == 413
    envelope(response)


def test_a_prompt_beyond_the_context_window_is_refused_before_sending(
    proxy: ProxyRig,
) -> None:
    from apiproxy.catalog import catalog
    from catalog.models import Model

    Model.objects.filter(public_id="fake-chat").update(context_window=100)
    catalog.invalidate()
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.openai().chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "word " * 400}]
        )
    assert caught.value.code == "context_length_exceeded"
    # The backend's tokenizer was asked for the count; the prompt never sent.
    assert proxy.backend.requests("/v1/chat/completions") == []


def test_max_tokens_is_never_shortened(proxy: ProxyRig) -> None:
    from apiproxy.catalog import catalog
    from catalog.models import Model

    Model.objects.filter(public_id="fake-chat").update(max_output_tokens=16)
    catalog.invalidate()
    proxy.openai().chat.completions.create(
        model="fake-chat", messages=MESSAGES, max_tokens=100_000
    )
    # The backend decides what fits, with the real count (it may refuse).
    assert proxy.backend.received[-1].json["max_tokens"] == 100_000


def test_an_unknown_model_is_a_404_model_not_found(proxy: ProxyRig) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        proxy.openai().chat.completions.create(model="gpt-17", messages=MESSAGES)
    assert caught.value.code == "model_not_found"


def test_a_model_of_another_group_answers_like_a_missing_one(proxy: ProxyRig) -> None:
    from django.contrib.auth.models import Group

    from apiproxy.catalog import catalog
    from catalog.models import Model

    model = Model.objects.get(public_id="fake-chat")
    model.everyone = False
    model.save()
    model.access_groups.add(Group.objects.create(name="physics"))
    catalog.invalidate()
    client = proxy.openai()
    with pytest.raises(openai.NotFoundError) as hidden:
        client.chat.completions.create(model="fake-chat", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="fake-chet", messages=MESSAGES)
    # Nothing tells a name of another group's model from a made-up one.
    assert hidden.value.code == missing.value.code == "model_not_found"
    assert hidden.value.message.replace("fake-chat", "fake-chet") == (
        missing.value.message
    )
    assert "fake-chat" not in {m.id for m in client.models.list()}


def test_a_missing_capability_is_a_501_unsupported(proxy: ProxyRig) -> None:
    response = post(proxy, "/v1/embeddings", json={"model": "fake-chat", "input": "x"})
    assert response.status_code == 501
    assert envelope(response)["type"] == "unsupported"


def test_an_unreachable_backend_is_a_502(proxy: ProxyRig) -> None:
    with proxy.backend.refusing():
        response = post(
            proxy,
            "/v1/chat/completions",
            json={"model": "fake-chat", "messages": MESSAGES},
        )
    assert response.status_code == 502
    assert envelope(response)["code"] == "backend_unreachable"


def test_a_silent_backend_is_a_504(proxy: ProxyRig, settings) -> None:
    settings.BACKEND_READ_TIMEOUT = 0.5
    proxy.backend.behaviour.hang = True
    response = post(
        proxy, "/v1/chat/completions", json={"model": "fake-chat", "messages": MESSAGES}
    )
    assert response.status_code == 504, response.text
    assert envelope(response)["code"] == "backend_timeout"


@pytest.mark.parametrize("status", [503, 429])
def test_an_overloaded_backend_is_a_503_with_retry_after(
    proxy: ProxyRig, status: int
) -> None:
    proxy.backend.behaviour.status = status
    proxy.backend.behaviour.retry_after = "7"
    response = post(
        proxy, "/v1/chat/completions", json={"model": "fake-chat", "messages": MESSAGES}
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert "fake-chat" in envelope(response)["message"]


def test_upstream_error_bodies_are_translated_not_reflected(proxy: ProxyRig) -> None:
    proxy.backend.behaviour.status = 500
    response = post(
        proxy, "/v1/chat/completions", json={"model": "fake-chat", "messages": MESSAGES}
    )
    assert response.status_code == 502
    assert INTERNAL_SECRET not in response.text
    assert INTERNAL_URL not in response.text
    envelope(response)


def test_integer_error_codes_become_strings_or_null(proxy: ProxyRig) -> None:
    proxy.backend.behaviour.status = 400
    response = post(
        proxy, "/v1/chat/completions", json={"model": "fake-chat", "messages": MESSAGES}
    )
    assert response.status_code == 400
    code = envelope(response)["code"]
    assert code is None or isinstance(code, str)


def test_fields_that_would_redirect_traffic_are_dropped(proxy: ProxyRig) -> None:
    post(
        proxy,
        "/v1/chat/completions",
        json={
            "model": "fake-chat",
            "messages": MESSAGES,
            "api_base": "http://169.254.169.254/",
            "api_key": "sk-stolen",
        },
    )
    sent = proxy.backend.received[-1].json
    assert "api_base" not in sent and "api_key" not in sent


def test_unknown_routes_and_methods_get_the_envelope(proxy: ProxyRig) -> None:
    with proxy.http() as http:
        assert http.get("/v1/files").status_code == 404
        response = http.get("/v1/chat/completions")
    assert response.status_code == 405
    envelope(response)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer sk-ptc_nonsense"},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"x-api-key": "sk-" + "A" * 60},
    ],
)
def test_requests_without_a_valid_key_get_401_invalid_api_key(
    proxy: ProxyRig, headers: dict[str, str]
) -> None:
    response = httpx.post(
        proxy.base_url + "/chat/completions",
        json={"model": "fake-chat", "messages": MESSAGES},
        headers=headers,
    )
    assert response.status_code == 401
    error = envelope(response)
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "invalid_request_error" and error["param"] is None


def test_x_api_key_is_accepted_like_bearer(proxy: ProxyRig) -> None:
    response = httpx.get(proxy.base_url + "/models", headers={"x-api-key": proxy.key})
    assert response.status_code == 200
    assert json.loads(response.text)["object"] == "list"


def test_a_key_check_during_a_database_outage_is_a_503_not_a_401(
    proxy: ProxyRig, server_processes
) -> None:
    from tests.faultproxy import FaultProxy
    from tests.fixtures_proxy import subprocess_database_url

    fault = FaultProxy("127.0.0.1", 5432).start()
    try:
        server = server_processes(DATABASE_URL=subprocess_database_url(port=fault.port))
        with fault.outage():
            during = httpx.get(
                server.url + "/v1/models",
                headers={"authorization": f"Bearer {proxy.key}"},
                timeout=30,
            )
        after = httpx.get(
            server.url + "/v1/models",
            headers={"authorization": f"Bearer {proxy.key}"},
            timeout=30,
        )
    finally:
        fault.close()
    assert during.status_code == 503, during.text
    assert envelope(during)["code"] == "auth_unavailable"
    assert after.status_code == 200
