"""Reading a request costs a bounded amount of time, memory and work: every
body has a deadline, the browser door refuses anonymous callers before it
reads a byte, large bodies are parsed off the event loop, the multipart scan
touches each byte a bounded number of times, and odd paths under /v1 get the
OpenAI envelope. Against the real server (uvicorn in a thread)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest

from apiproxy import parsing, transcription
from tests.fixtures_proxy import ProxyRig


def _raw_request(proxy: ProxyRig, head: bytes, body: bytes = b"") -> bytes:
    """Send `head` (and `body`, maybe shorter than announced) and return what
    the server answers, without ever finishing the body."""
    port = int(proxy.server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
        head_part, _, rest = answer.partition(b"\r\n\r\n")
        length = 0
        for line in head_part.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(rest) < length and (chunk := sock.recv(65536)):
            rest += chunk
        return head_part + b"\r\n\r\n" + rest


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_a_body_that_never_finishes_gets_a_408(proxy: ProxyRig, settings: Any) -> None:
    settings.REQUEST_BODY_TIMEOUT = 1.0
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + proxy.key.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    )
    started = time.monotonic()
    answer = _raw_request(proxy, head, b'{"model": "fake-chat", "mess')
    assert _status(answer) == 408
    assert time.monotonic() - started < 10
    assert b'"code": "request_timeout"' in answer


def test_the_browser_door_refuses_anonymous_callers_before_reading(
    proxy: ProxyRig,
) -> None:
    # 10 MB announced, none sent: the answer comes from the headers alone.
    head = (
        b"POST /chat/stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    )
    answer = _raw_request(proxy, head)
    assert _status(answer) == 401
    assert b"not_authenticated" in answer
    with_session = head.replace(
        b"Content-Type", b"Cookie: sessionid=forged\r\nContent-Type"
    )
    answer = _raw_request(proxy, with_session)
    assert _status(answer) == 403
    assert b"csrf_failed" in answer


def test_the_browser_door_caps_a_turn(proxy: ProxyRig, settings: Any) -> None:
    settings.CHAT_MAX_TURN_BYTES = 4096
    head = (
        b"POST /chat/stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Cookie: sessionid=x; csrftoken=y\r\nX-CSRFToken: y\r\n"
        b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    )
    assert _status(_raw_request(proxy, head)) == 413


def test_large_bodies_are_parsed_off_the_event_loop(
    proxy: ProxyRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    original = parsing.request_parse

    def recording(endpoint: str, raw: bytes) -> Any:
        threads.append(threading.current_thread().name)
        return original(endpoint, raw)

    monkeypatch.setattr(parsing, "request_parse", recording)
    small = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}
    large = {**small, "padding": "x" * (parsing.PARSE_IN_THREAD_BYTES + 1)}
    with proxy.http() as http:
        assert http.post("/v1/chat/completions", json=small).status_code == 200
        assert http.post("/v1/chat/completions", json=large).status_code == 200
    assert not threads[0].startswith("parse")
    assert threads[1].startswith("parse")


def test_deep_nesting_is_a_400_in_the_envelope(proxy: ProxyRig) -> None:
    body = b'{"model": "fake-chat", "messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    with proxy.http() as http:
        response = http.post(
            "/v1/chat/completions",
            content=body,
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("path", ["/V1/models", "/v1", "/v1/", "/v1/nothing/here"])
def test_odd_paths_under_v1_get_the_openai_envelope(proxy: ProxyRig, path: str) -> None:
    with proxy.http() as http:
        response = http.get(path)
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_the_multipart_scan_reads_each_byte_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the bounded look-back each chunk rescans the whole prefix: 20 MB
    in 64 KB chunks would scan about 3 GB."""
    scanned: list[int] = []
    pattern = transcription._MODEL_PART

    class Counting:
        def search(self, data: bytes, start: int = 0) -> Any:
            scanned.append(len(data) - start)
            return pattern.search(data, start)

    monkeypatch.setattr(transcription, "_MODEL_PART", Counting())
    file_part = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + b"\0" * 4_000_000 + b"\r\n"
    )
    model_part = b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nw\r\n'
    upload = file_part + model_part + b"--b--\r\n"
    chunks = [upload[i : i + 65536] for i in range(0, len(upload), 65536)]
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    class Exchange:
        pass

    exchange: Any = Exchange()
    exchange.receive = receive
    deadline = asyncio.get_running_loop().time() + 30
    _, more, match = await transcription._read_until_model(
        exchange, 10_000_000, deadline
    )
    assert match.group("value") == b"w" and not more
    assert sum(scanned) < 2 * len(upload)


def test_a_key_in_the_path_never_reaches_the_log_or_the_meter(
    proxy: ProxyRig, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-ptc_" + "Q" * 40
    with caplog.at_level("INFO"), proxy.http() as http:
        response = http.get(f"/v1/{secret}/models")
        retrieve = http.get(f"/v1/models/{secret}")
    assert response.status_code == retrieve.status_code == 404
    record = proxy.usage_record(response.headers["x-request-id"])
    assert record.endpoint == "unknown"
    assert secret not in caplog.text
