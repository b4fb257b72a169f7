"""SIGTERM during streams: the server stops accepting, lets the streams end
within SHUTDOWN_GRACE, and drains the meter, so no usage record is lost.

The server runs as the image runs it (docker/entrypoint.sh hands
SHUTDOWN_GRACE to uvicorn), with a flush interval longer than the test, so
that every record reaches the database through the shutdown drain."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from accounts.models import User
from ops.tests.conftest import PorticoProcess
from tests.factories import apikey_make
from tests.fakebackend import FakeBackend
from tests.fixtures_proxy import model_register
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


class Stream(threading.Thread):
    """One streamed chat completion, read to its end in a thread."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.request_id = ""
        self.body = b""
        self.started = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with httpx.stream(
                "POST",
                self.url + "/v1/chat/completions",
                json={
                    "model": "fake-chat",
                    "messages": [{"role": "user", "content": "tell a long story"}],
                    "stream": True,
                },
                headers={"authorization": f"Bearer {self.key}"},
                timeout=60,
            ) as response:
                self.request_id = response.headers["x-request-id"]
                for chunk in response.iter_bytes():
                    self.body += chunk
                    if b'"content"' in self.body:
                        self.started.set()
        except Exception as error:  # reported by the test
            self.error = error
        finally:
            self.started.set()


def streams_begin(url: str, key: str, count: int) -> list[Stream]:
    streams = [Stream(url, key) for _ in range(count)]
    for stream in streams:
        stream.start()
    for stream in streams:
        assert stream.started.wait(timeout=20)
        assert stream.error is None, stream.error
    return streams


def records_of(streams: list[Stream]) -> dict[str, UsageRecord]:
    ids = [stream.request_id for stream in streams]
    return {r.request_id: r for r in UsageRecord.objects.filter(request_id__in=ids)}


def test_sigterm_lets_streams_finish_and_loses_no_usage_record(
    portico_process: Callable[..., PorticoProcess],
    fake_backend: FakeBackend,
    alice: User,
) -> None:
    model_register(fake_backend)
    fake_backend.behaviour.tokens = 20
    fake_backend.behaviour.token_delay = 0.1  # two seconds a stream
    key = apikey_make(user=alice).raw
    server = portico_process(SHUTDOWN_GRACE="20", USAGE_FLUSH_SECONDS="600")
    streams = streams_begin(server.url, key, 3)

    server.terminate()
    # No new connections from now on, while the streams go on.
    deadline = time.monotonic() + 5
    while True:
        try:
            httpx.get(server.url + "/healthz", timeout=1)
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
            # Refused, or (when the probe races the listener's close on a
            # busy machine) accepted and reset: either way not served.
            break
        assert time.monotonic() < deadline, "still accepting after SIGTERM"
        time.sleep(0.05)
    assert any(stream.is_alive() for stream in streams)

    for stream in streams:
        stream.join(timeout=30)
        assert stream.error is None, stream.error
        assert stream.body.rstrip().endswith(b"data: [DONE]")
        assert stream.body.count(b'"content"') >= 20
    assert server.wait(timeout=30) in (0, -15)  # uvicorn re-raises SIGTERM

    records = records_of(streams)
    assert len(records) == 3
    for record in records.values():
        assert (record.status, record.finish_reason) == (200, "stop")
        assert record.completion_tokens == 20


def test_streams_beyond_the_grace_are_cut_and_still_metered(
    portico_process: Callable[..., PorticoProcess],
    fake_backend: FakeBackend,
    alice: User,
) -> None:
    model_register(fake_backend)
    fake_backend.behaviour.tokens = 200
    fake_backend.behaviour.token_delay = 0.1  # twenty seconds a stream
    key = apikey_make(user=alice).raw
    server = portico_process(SHUTDOWN_GRACE="1", USAGE_FLUSH_SECONDS="600")
    streams = streams_begin(server.url, key, 2)

    cut_at = time.monotonic()
    server.terminate()
    assert server.wait(timeout=30) in (0, -15)
    assert time.monotonic() - cut_at < 10
    for stream in streams:
        stream.join(timeout=10)
        assert b"data: [DONE]" not in stream.body

    records = records_of(streams)
    assert len(records) == 2
    for record in records.values():
        assert 0 < record.completion_tokens < 200
