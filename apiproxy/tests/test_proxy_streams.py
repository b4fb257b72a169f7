"""Streams under failure: backend death, client disconnect, failover."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.fakebackend import FakeBackend
from tests.fixtures_proxy import ProxyRig, model_register

MESSAGES = [{"role": "user", "content": "tell me a story"}]


def test_a_backend_dying_mid_stream_ends_it_with_an_error_the_sdk_raises(
    proxy: ProxyRig,
) -> None:
    proxy.backend.behaviour.die_after_chunks = 3
    stream = proxy.openai().chat.completions.create(
        model="fake-chat", messages=MESSAGES, stream=True, max_tokens=20
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert received, "the chunks before the failure were relayed"
    assert "broke off" in str(caught.value)
    record = proxy.usage_record(stream.response.headers["x-request-id"])
    assert record.finish_reason == "backend_error"
    assert record.completion_tokens >= 1


def test_a_backend_going_silent_mid_stream_ends_it_with_an_error(
    proxy: ProxyRig, settings
) -> None:
    settings.BACKEND_READ_TIMEOUT = 0.5
    proxy.backend.behaviour.hang_after_chunks = 2
    stream = proxy.openai().chat.completions.create(
        model="fake-chat", messages=MESSAGES, stream=True, max_tokens=20
    )
    with pytest.raises(openai.APIError):
        list(stream)


def test_a_client_disconnect_cancels_the_backend_within_a_second_and_is_billed(
    proxy: ProxyRig,
) -> None:
    proxy.backend.behaviour.tokens = 200
    proxy.backend.behaviour.token_delay = 0.02
    with httpx.Client(timeout=10) as http:
        with http.stream(
            "POST",
            proxy.base_url + "/chat/completions",
            headers={"authorization": f"Bearer {proxy.key}"},
            json={"model": "fake-chat", "messages": MESSAGES, "stream": True},
        ) as response:
            request_id = response.headers["x-request-id"]
            lines = response.iter_lines()
            for _ in range(10):
                next(lines)
            left_at = time.monotonic()
    cancelled = proxy.backend.wait_for_cancellation(timeout=5)
    assert cancelled.cancelled_at - left_at < 1.0
    record = proxy.usage_record(request_id)
    assert record.finish_reason == "client_disconnect"
    assert record.completion_tokens >= 3
    assert record.prompt_tokens > 0


def test_a_refusing_backend_is_skipped_for_a_healthy_one(
    proxy: ProxyRig, fake_backend_factory
) -> None:
    second: FakeBackend = fake_backend_factory()
    model_register(second, name="second")
    with proxy.backend.refusing():
        for _ in range(3):
            reply = proxy.openai().chat.completions.create(
                model="fake-chat", messages=MESSAGES
            )
            assert reply.choices[0].message.content
    assert len(second.requests("/v1/chat/completions")) == 3


def test_load_is_spread_over_backends_by_least_in_flight(
    proxy: ProxyRig, fake_backend_factory
) -> None:
    import concurrent.futures

    second: FakeBackend = fake_backend_factory()
    model_register(second, name="second")
    for backend in (proxy.backend, second):
        backend.behaviour.token_delay = 0.05
        backend.behaviour.tokens = 6
    client = proxy.openai()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda _: client.chat.completions.create(
                    model="fake-chat", messages=MESSAGES
                ),
                range(8),
            )
        )
    first_count = len(proxy.backend.requests("/v1/chat/completions"))
    second_count = len(second.requests("/v1/chat/completions"))
    assert first_count + second_count == 8
    assert 2 <= first_count <= 6


@pytest.mark.parametrize(
    ("behaviour", "finish_reason"),
    [({}, "stop"), ({"error_after_chunks": 3}, "backend_error")],
    ids=["answer", "error event"],
)
def test_a_client_that_hangs_up_after_done_interrupted_nothing(
    proxy: ProxyRig, behaviour: dict, finish_reason: str
) -> None:
    """The backend keeps the stream open after [DONE]; the SDK hangs up as soon
    as it has read it. The answer was complete: the meter must not call it a
    client disconnect."""
    for name, value in {"linger_after_done": 2.0, **behaviour}.items():
        setattr(proxy.backend.behaviour, name, value)
    body = {"model": "fake-chat", "messages": MESSAGES, "stream": True}
    with (
        proxy.http() as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line == "data: [DONE]":
                break
    record = proxy.usage_record(request_id)
    assert record.finish_reason == finish_reason
