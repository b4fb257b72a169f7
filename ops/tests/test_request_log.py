"""The request log line: ids, figures and timings; never a key, a prompt or
an answer, in the test process (caplog) or a server process (its stderr)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from accounts.models import User
from apiproxy.requestlog import request_log
from ops.tests.conftest import PorticoProcess
from portal.logformat import JsonFormatter
from tests.factories import apikey_make, user_make
from tests.fakebackend import FakeBackend
from tests.fakebackend_payloads import fake_text
from tests.fixtures_proxy import ProxyRig, model_register
from usage.outcome import RequestOutcome

pytestmark = pytest.mark.django_db(transaction=True)

CANARY_PROMPT = "canary-prompt-5b1f0e3c do not log me"
ANSWER = fake_text(8).strip()  # what the fake backend answers


def chat(url: str, key: str, *, stream: bool = False, **extra: Any) -> httpx.Response:
    body = {
        "model": "fake-chat",
        "messages": [{"role": "user", "content": CANARY_PROMPT}],
        "stream": stream,
        **extra,
    }
    response = httpx.post(
        url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=20,
    )
    return response


def secrets_in(text: str, key: str) -> list[str]:
    secret = key.split("_", 1)[1]  # the key without its sk-<tag>_ prefix
    found = {"key": key, "key secret": secret, "prompt": CANARY_PROMPT}
    found |= {"prompt word": "canary-prompt", "answer": ANSWER}
    return [name for name, value in found.items() if value in text]


def test_each_request_logs_one_line_without_key_prompt_or_answer(
    proxy: ProxyRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = proxy.server.url
    plain = chat(url, proxy.key)
    streamed = chat(url, proxy.key, stream=True)
    wrong_key = proxy.key[:-4] + "AAAA"
    refused = chat(url, wrong_key)
    assert (plain.status_code, streamed.status_code, refused.status_code) == (
        200,
        200,
        401,
    )
    ids = [r.headers["x-request-id"] for r in (plain, streamed, refused)]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [r for r in caplog.records if r.name == "portico.requests"]
        if len(lines) >= 3:
            break
        time.sleep(0.02)
    by_id = {record.fields["request_id"]: record for record in lines}
    assert sorted(by_id) == sorted(ids)

    line = by_id[ids[1]].fields
    assert line["user_id"] == proxy.user.pk and line["key_id"] is not None
    assert (line["model"], line["status"], line["stream"]) == ("fake-chat", 200, True)
    assert line["completion_tokens"] == 8 and line["prompt_tokens"] > 0
    assert line["ttft_ms"] is not None and line["duration_ms"] >= line["ttft_ms"]
    assert (line["source"], line["endpoint"]) == ("api", "chat/completions")
    message = by_id[ids[1]].getMessage()
    assert message.startswith(f"request request_id={ids[1]} user_id=")
    assert by_id[ids[2]].fields["status"] == 401
    assert by_id[ids[2]].fields["user_id"] is None

    assert secrets_in(caplog.text, proxy.key) == []
    assert secrets_in(caplog.text, wrong_key) == []


def test_a_model_name_cannot_forge_a_field_or_a_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="portico.requests")
    outcome = RequestOutcome(
        request_id="req_1",
        endpoint="chat/completions",
        model='x status=200\nrequest request_id=forged "',
    )
    request_log(outcome)
    (record,) = caplog.records
    message = record.getMessage()
    assert "\n" not in message
    assert 'model="x status=200\\nrequest request_id=forged \\""' in message


def test_the_json_format_puts_the_fields_in_the_object() -> None:
    record = logging.LogRecord(
        "portico.requests", logging.INFO, __file__, 1, "request %s", ("x=1",), None
    )
    record.fields = {"request_id": "req_1", "status": 200, "level": "forged"}
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "request x=1"
    assert (data["request_id"], data["status"], data["level"]) == ("req_1", 200, "INFO")
    assert data["logger"] == "portico.requests" and data["time"].endswith("+00:00")


def test_a_server_process_logs_json_lines_without_key_prompt_or_answer(
    portico_process: Callable[..., PorticoProcess],
    fake_backend: FakeBackend,
    alice: User,
) -> None:
    model_register(fake_backend)
    key = apikey_make(user=alice).raw
    user_make(username="bystander")
    server = portico_process(LOG_FORMAT="json", LOG_LEVEL="debug")
    responses = [
        chat(server.url, key),
        chat(server.url, key, stream=True),
        chat(server.url, key[:-4] + "AAAA"),
        chat(server.url, key, model="no-such-model"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 401, 404]
    ids = {r.headers["x-request-id"] for r in responses}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(request_id in server.log() for request_id in ids):
            break
        time.sleep(0.05)
    server.terminate()
    # uvicorn shuts down, then re-raises SIGTERM on itself.
    assert server.wait(timeout=30) in (0, -15)
    output = server.log()
    assert "Application shutdown complete" in output

    lines = [json.loads(line) for line in output.splitlines() if '"request_id"' in line]
    logged = {
        line["request_id"]: line
        for line in lines
        if line["logger"] == "portico.requests"
    }
    assert set(logged) == ids
    assert {line["status"] for line in logged.values()} == {200, 401, 404}
    assert all(line["level"] == "INFO" for line in logged.values())
    # uvicorn's own lines are JSON too.
    assert any(
        json.loads(line).get("logger", "").startswith("uvicorn")
        for line in output.splitlines()
        if line.startswith("{")
    )
    assert secrets_in(output, key) == []
