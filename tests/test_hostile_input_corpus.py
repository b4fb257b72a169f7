"""A corpus of hostile input, sent to every endpoint that takes a body: the
proxy's, the browser door, the JSON API and the forms. Against the real
server (uvicorn serving all of Portico in a thread of this process).

Whatever arrives, the answer is a 4xx in the envelope of that door (the
OpenAI envelope on the proxy and the browser door, `{"error": ...}` on
/api/), never a 5xx and never a traceback in the log, and the probes keep
answering while it happens.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
import pytest

from chat.services import conversation_create
from chat.tests.conftest import session_cookies
from tests.factories import apikey_make
from tests.fixtures_proxy import ProxyRig

MESSAGES = [{"role": "user", "content": "hi"}]
DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE_INT = b"9" * 5_000  # beyond Python's 4,300-digit limit for int()


def _json_bodies(base: dict[str, Any], text_field: str) -> dict[str, bytes]:
    """Hostile variants of one valid JSON body; `text_field` takes strings."""

    def with_text(raw: bytes) -> bytes:
        body = json.dumps({**base, text_field: "@@"}).encode()
        return body.replace(b'"@@"', raw)

    return {
        "deep nesting": json.dumps(base).encode()[:-1] + b', "x": ' + DEEP + b"}",
        "huge integer": json.dumps(base).encode()[:-1] + b', "n": ' + HUGE_INT + b"}",
        "huge float": json.dumps(base).encode()[:-1] + b', "temperature": 1e999}',
        "NUL": with_text(b'"a\\u0000b"'),
        "lone surrogate": with_text(b'"a\\ud800b"'),
        "control characters": with_text(b'"\\u0001\\u001b[31m\\u007f"'),
        "formula": with_text(b'"=HYPERLINK(\\"http://x\\")"'),
        "not JSON": b"{" + b"\xff\xfe" * 10,
        "not an object": b"[1, 2, 3]",
        "20 MB": json.dumps({**base, "padding": "x" * 20_000_000}).encode(),
    }


@pytest.fixture
def doors(proxy: ProxyRig, settings: Any) -> Iterator[dict[str, Any]]:
    """Every body-accepting endpoint, with what it needs to be called."""
    settings.REFUSALS_PER_MINUTE = 100_000  # the corpus itself is many refusals
    cookies = session_cookies(proxy.user)
    browser = {"cookies": cookies, "headers": {"x-csrftoken": cookies["csrftoken"]}}
    bearer = {"headers": {"authorization": f"Bearer {proxy.key}"}}
    conversation = conversation_create(user=proxy.user, model="fake-chat")
    key = apikey_make(user=proxy.user)
    chat = {"model": "fake-chat", "messages": MESSAGES}
    yield {
        "/v1/chat/completions": (bearer, chat, "model", "openai"),
        "/v1/completions": (
            bearer,
            {"model": "fake-chat", "prompt": "hi"},
            "prompt",
            "openai",
        ),
        "/v1/embeddings": (
            bearer,
            {"model": "fake-embed", "input": "hi"},
            "input",
            "openai",
        ),
        "/v1/responses": (
            bearer,
            {"model": "fake-chat", "input": "hi"},
            "input",
            "openai",
        ),
        "/chat/stream/": (
            browser,
            {"conversation": conversation.pk, "content": "hi"},
            "content",
            "openai",
        ),
        "/api/conversations/": (
            browser,
            {"title": "t", "model": "fake-chat"},
            "title",
            "api",
        ),
        f"/api/keys/{key.key.pk}/": (browser, {"name": "n"}, "name", "api"),
        "/api/keys/": (browser, {"name": "n"}, "name", "api"),
    }


class Probe:
    """Polls /healthz while the corpus runs and keeps the slowest answer."""

    def __init__(self, url: str) -> None:
        self.url, self.times = url, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                assert http.get(self.url + "/healthz").status_code == 200
                self.times.append(time.monotonic() - started)
                time.sleep(0.02)

    def __enter__(self) -> Probe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _check_envelope(response: httpx.Response, kind: str, what: str) -> str:
    assert 400 <= response.status_code < 500, (
        what,
        response.status_code,
        response.text,
    )
    assert response.headers["content-type"].startswith("application/json"), (
        what,
        response.status_code,
        response.text[:300],
    )
    error = response.json()["error"]
    if kind == "openai":
        assert set(error) == {"message", "type", "param", "code"}
    else:
        assert {"code", "message"} <= set(error)
    return str(response.status_code)


def test_hostile_bodies_get_a_4xx_in_the_right_envelope_and_the_probes_keep_up(
    proxy: ProxyRig, doors: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    answers: dict[str, str] = {}
    with caplog.at_level(logging.WARNING), Probe(proxy.server.url) as probe:
        for path, (auth, base, field, kind) in doors.items():
            method = "PATCH" if path.count("/") > 3 else "POST"
            with httpx.Client(
                base_url=proxy.server.url,
                timeout=60,
                cookies=auth.get("cookies"),
                headers={**auth["headers"], "content-type": "application/json"},
            ) as http:
                for name, body in _json_bodies(base, field).items():
                    response = http.request(method, path, content=body)
                    if response.status_code < 400:
                        continue  # taken as data (a formula is a valid title)
                    what = f"{method} {path} {name}"
                    answers[what] = _check_envelope(response, kind, what)
    # Django's security log notes an oversized body: a line (the console
    # handler drops its traceback, portal.logformat), counted apart here.
    tracebacks = [
        r
        for r in caplog.records
        if r.exc_info and not r.name.startswith("django.security")
    ]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]
    assert max(probe.times) < 1.0, f"/healthz took {max(probe.times):.2f}s"
    assert answers  # the corpus was refused somewhere, not silently accepted


@pytest.mark.parametrize(
    "path", ["/api/conversations/?q=a%00b", "/admin/catalog/model/?q=%00", "/?q=%00"]
)
def test_nul_in_a_query_string_is_a_400(proxy: ProxyRig, path: str) -> None:
    cookies = session_cookies(proxy.user)
    proxy.user.is_staff = proxy.user.is_superuser = True
    proxy.user.save()
    response = httpx.get(proxy.server.url + path, cookies=cookies, timeout=20)
    assert response.status_code == 400


def test_a_slow_body_to_django_gets_a_408(proxy: ProxyRig, settings: Any) -> None:
    settings.REQUEST_BODY_TIMEOUT = 1.0
    port = int(proxy.server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(
            b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100000\r\n\r\nlogin=a"
        )
        started = time.monotonic()
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 10


def test_a_client_that_leaves_mid_body_costs_nothing(proxy: ProxyRig) -> None:
    port = int(proxy.server.url.rsplit(":", 1)[1])
    for path in (b"/v1/chat/completions", b"/chat/stream/", b"/api/keys/"):
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            sock.sendall(
                b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Authorization: Bearer " + proxy.key.encode() + b"\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            )
    assert httpx.get(proxy.server.url + "/healthz", timeout=5).status_code == 200


FORM_VALUES = {
    "NUL": "a\x00b",
    "lone surrogate": "a\udc80b",
    "control characters": "\x01\x1b[31m\x7f",
    "formula": '=HYPERLINK("http://x")',
    "huge": "9" * 100_000,
}


@pytest.mark.parametrize("name", list(FORM_VALUES))
def test_forms_answer_hostile_fields_with_a_form_error_never_a_5xx(
    proxy: ProxyRig, name: str
) -> None:
    """The pages' forms (a new key, an access request, a log-in), posted as a
    browser does, with the session and CSRF token."""
    cookies = session_cookies(proxy.user)
    value = FORM_VALUES[name].encode("utf-8", "surrogatepass")
    forms = {
        "/settings/account/keys/": {b"name": value, b"expires_on": value},
        "/settings/access/": {b"group": value, b"use_case": value},
        "/accounts/login/": {b"login": value, b"password": value},
    }
    with httpx.Client(
        base_url=proxy.server.url,
        cookies=cookies,
        headers={"x-csrftoken": cookies["csrftoken"], "referer": proxy.server.url},
        timeout=30,
    ) as http:
        for path, fields in forms.items():
            body = b"&".join(
                quote_from_bytes(k).encode() + b"=" + quote_from_bytes(v).encode()
                for k, v in fields.items()
            )
            response = http.post(
                path,
                content=body,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert response.status_code < 500, (path, name, response.status_code)
