"""A short tier against the embedded llama.cpp demo backend, a real inference
server, through the real proxy: streaming framing, usage, concurrent streams,
cancellation. Structure is asserted, never the model's words; answers are tiny."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from accounts.services import apikey_create
from apiproxy.catalog import catalog
from catalog.services import backend_add, backend_discover_models
from portal.demobackend import MODEL_ID, DemoBackendUnavailable, demo_backend_start
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
