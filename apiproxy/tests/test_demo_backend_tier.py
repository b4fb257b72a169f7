"""A short tier against the embedded llama.cpp demo backend, a real inference
server, through the real proxy: streaming framing, usage, concurrent streams,
cancellation. Structure is asserted, never the model's words; answers are tiny."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from accounts.services import apikey_create
from apiproxy.catalog import catalog
from catalog.services import backend_add, backend_discover_models
from portal.demobackend import (
    CONTEXT_PER_SLOT,
    MODEL_ID,
    DemoBackendUnavailable,
    demo_backend_start,
)
from tests.factories import user_make
from tests.fixtures_browser import ThreadedUvicorn

pytestmark = pytest.mark.demo_backend

MESSAGES = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def demo_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = Path(tmp_path_factory.mktemp("demo")) / "demo-backend.log"
    try:
        backend = demo_backend_start(log_path=log)
    except DemoBackendUnavailable as why:
        pytest.skip(f"the demo backend cannot run on this machine: {why}")
    try:
        backend.wait_healthy(timeout=90)
        yield backend.base_url
    finally:
        backend.stop()


@pytest.fixture
def demo(
    demo_backend: str, transactional_db: None, settings
) -> Iterator[tuple[str, str]]:
    settings.CATALOG_REFRESH_SECONDS = 0
    settings.USAGE_FLUSH_SECONDS = 0.05
    user = user_make(username="alice")
    key = apikey_create(user=user, name="demo").raw
    backend_discover_models(backend=backend_add(name="demo", base_url=demo_backend))
    catalog.invalidate()
    server = ThreadedUvicorn()
    server.start()
    try:
        yield server.url + "/v1", key
    finally:
        server.stop()


def client(demo: tuple[str, str]):  # type: ignore[no-untyped-def]
    from openai import OpenAI

    base_url, key = demo
    return OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)


def test_a_real_stream_is_framed_and_billed(demo: tuple[str, str]) -> None:
    chunks = list(
        client(demo).chat.completions.create(
            model=MODEL_ID,
            messages=MESSAGES,
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].model == MODEL_ID
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert content, "tokens arrived as deltas"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens <= 4
    assert chunks[-1].usage.prompt_tokens > 0


def test_a_real_non_streamed_answer(demo: tuple[str, str]) -> None:
    reply = client(demo).chat.completions.create(
        model=MODEL_ID, messages=MESSAGES, max_tokens=3
    )
    assert reply.choices[0].finish_reason in ("length", "stop")
    assert 0 < reply.usage.completion_tokens <= 3


def test_six_concurrent_streams(demo: tuple[str, str]) -> None:
    sdk = client(demo)

    def one(_: int) -> int:
        stream = sdk.chat.completions.create(
            model=MODEL_ID, messages=MESSAGES, max_tokens=4, stream=True
        )
        return sum(1 for c in stream if c.choices and c.choices[0].delta.content)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        counts = list(pool.map(one, range(6)))
    assert all(count >= 1 for count in counts)


def test_a_cancelled_real_stream_is_recorded(demo: tuple[str, str]) -> None:
    from usage.models import UsageRecord

    base_url, key = demo
    with httpx.Client(timeout=60) as http:
        with http.stream(
            "POST",
            base_url + "/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={
                "model": MODEL_ID,
                "messages": [
                    {"role": "user", "content": "Count slowly to one hundred."}
                ],
                "max_tokens": 200,
                "stream": True,
            },
        ) as response:
            request_id = response.headers["x-request-id"]
            lines = response.iter_lines()
            for _ in range(6):
                next(lines)
    deadline = time.monotonic() + 10
    record = None
    while record is None and time.monotonic() < deadline:
        record = UsageRecord.objects.filter(request_id=request_id).first()
        time.sleep(0.05)
    assert record is not None
    assert record.finish_reason == "client_disconnect"
    assert 1 <= record.completion_tokens < 200


# -- The context window at its boundary (2,048 tokens a slot): prompts that fit
# pass however many characters they have, and one over the window is refused
# once, with the same error whether Portico refused it (by llama.cpp's own
# count) or llama.cpp did.


def context_words(count: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": "word " * count}]


@pytest.mark.parametrize("count", [1700, 1850, 2000])
def test_prompts_of_short_words_up_to_the_window_pass(
    demo: tuple[str, str], count: int
) -> None:
    reply = client(demo).chat.completions.create(
        model=MODEL_ID, messages=context_words(count), max_tokens=1
    )
    # 5 characters a word, one token a word, plus the template's 31 tokens:
    # "word " * 1700 is 8,500 characters (2,126 "tokens" at four characters a
    # token, refused before) and 1,731 real tokens.
    assert reply.usage.prompt_tokens == count + 31
    assert reply.usage.prompt_tokens < CONTEXT_PER_SLOT


def _refusal(demo: tuple[str, str]) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as caught:
        client(demo).chat.completions.create(
            model=MODEL_ID, messages=context_words(2100), max_tokens=1
        )
    return caught.value


def test_a_prompt_over_the_window_is_refused_once_in_one_set_of_words(
    demo: tuple[str, str],
) -> None:
    from apiproxy.catalog import catalog
    from apiproxy.tokenize import tokenizers
    from catalog.models import Backend, Model
    from usage.models import UsageRecord

    # The catalog has the slot's window: Portico asks llama.cpp for the count.
    Model.objects.filter(public_id=MODEL_ID).update(context_window=CONTEXT_PER_SLOT)
    catalog.invalidate()
    tokenizers.clear()
    by_portico = _refusal(demo)
    # Now Portico cannot count (Ollama has no tokenizer): llama.cpp refuses.
    Backend.objects.update(software=Backend.Software.OLLAMA)
    catalog.invalidate()
    by_backend = _refusal(demo)
    for error in (by_portico, by_backend):
        assert error.code == "context_length_exceeded"
        assert error.param == "messages"
    expected = (
        f"This model's maximum context length is {CONTEXT_PER_SLOT} tokens. Your "
        "messages come to 2131 tokens. Shorten them."
    )
    assert by_portico.body["message"] == by_backend.body["message"] == expected  # type: ignore[index]
    # Once each: the SDK does not retry a 400 (two refusals, two records).
    deadline = time.monotonic() + 10
    while UsageRecord.objects.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # a retry's record would have come by now
    refused = UsageRecord.objects.filter(status=400).order_by("started_at")
    # The first never reached llama.cpp (no backend); the second did.
    assert [r.backend_id is None for r in refused] == [True, False]
