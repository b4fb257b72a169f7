"""CORS on the API door: browser-based clients on other origins call /v1/ with
a key, as they can call OpenAI's API; never with credentials, and never on
the browser door."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from apiproxy.cors import EXPOSED, policy_build
from tests.fixtures_proxy import ProxyRig

ORIGIN = "http://127.0.0.1:9"
PREFLIGHT = {
    "origin": ORIGIN,
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization,content-type,x-stainless-os",
}
CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}


def test_a_preflight_is_answered_with_204_and_the_requested_headers(
    proxy: ProxyRig,
) -> None:
    with proxy.http() as client:
        for path in ("/v1/chat/completions", "/api/chat/completions"):
            response = client.options(path, headers=PREFLIGHT)
            assert response.status_code == 204
            assert response.headers["access-control-allow-origin"] == "*"
            assert "POST" in response.headers["access-control-allow-methods"]
            assert response.headers["access-control-allow-headers"] == (
                "authorization,content-type,x-stainless-os"
            )
            assert response.headers["access-control-max-age"] == "7200"
            assert "access-control-allow-credentials" not in response.headers


def test_answers_and_errors_carry_the_origin_and_exposed_headers(
    proxy: ProxyRig,
) -> None:
    with proxy.http() as client:
        answer = client.post(
            "/v1/chat/completions", json=CHAT, headers={"origin": ORIGIN}
        )
        unknown = client.post(
            "/v1/chat/completions",
            json={**CHAT, "model": "nope"},
            headers={"origin": ORIGIN},
        )
        unauthorized = client.get(
            "/v1/models", headers={"origin": ORIGIN, "authorization": "Bearer sk-x"}
        )
        without_origin = client.post("/v1/chat/completions", json=CHAT)
    for response in (answer, unknown, unauthorized):
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["access-control-expose-headers"] == EXPOSED.decode()
        assert "access-control-allow-credentials" not in response.headers
    assert (answer.status_code, unknown.status_code) == (200, 404)
    assert unauthorized.status_code == 401
    assert "access-control-allow-origin" not in without_origin.headers


def test_only_the_listed_origins_are_allowed_when_some_are_configured(
    proxy: ProxyRig, settings: Any
) -> None:
    settings.API_CORS_ORIGINS = ("https://tools.example.org",)
    with proxy.http() as client:
        refused = client.options("/v1/chat/completions", headers=PREFLIGHT)
        allowed = client.options(
            "/v1/chat/completions",
            headers={**PREFLIGHT, "origin": "https://tools.example.org"},
        )
        answer = client.post(
            "/v1/chat/completions", json=CHAT, headers={"origin": ORIGIN}
        )
    assert refused.status_code == 403
    assert not any(name.startswith("access-control-") for name in refused.headers)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://tools.example.org"
    assert "access-control-allow-credentials" not in allowed.headers
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


def test_off_turns_cors_away_and_options_is_an_ordinary_request(
    proxy: ProxyRig, settings: Any
) -> None:
    settings.API_CORS_ORIGINS = ()
    with proxy.http() as client:
        response = client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert response.status_code == 405
    assert "access-control-allow-origin" not in response.headers


def test_an_odd_requested_header_list_gets_the_sdk_list_instead() -> None:
    policy = policy_build(("*",))
    headers = dict(policy.preflight_headers(b"http://a", b"x\r\nset-cookie: y"))
    assert b"authorization" in headers[b"access-control-allow-headers"]
    assert b"x-stainless-retry-count" in headers[b"access-control-allow-headers"]


PAGE = b"""<!doctype html><title>tool</title><pre id="out"></pre>
<script>
(async () => {
  const [base, key] = decodeURIComponent(location.hash.slice(1)).split("|");
  const out = document.getElementById("out");
  try {
    const response = await fetch(base + "/v1/chat/completions", {
      method: "POST",
      headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json"},
      body: JSON.stringify({model: "fake-chat", stream: true,
        messages: [{role: "user", content: "hi"}]}),
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let text = "";
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      text += decoder.decode(value, {stream: true});
    }
    out.textContent = response.headers.get("x-request-id") + "\\n" + text;
  } catch (error) {
    out.textContent = "failed: " + error;
  }
  out.dataset.done = "1";
})();
</script>"""


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tool_site() -> Iterator[str]:
    """Another loopback origin serving a web tool that calls Portico."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_a_page_on_another_origin_reads_a_streamed_answer_with_a_key(
    proxy: ProxyRig, page: Any, tool_site: str
) -> None:
    page.goto(f"{tool_site}/tool.html#{proxy.server.url}|{proxy.key}")
    page.wait_for_selector("#out[data-done]")
    text = page.text_content("#out")
    assert not text.startswith("failed"), text
    request_id, _, body = text.partition("\n")
    assert request_id.startswith("req_"), "x-request-id is exposed to the page"
    assert "data: [DONE]" in body and '"content"' in body


def test_the_browser_door_and_django_pages_get_no_cors_headers(
    proxy: ProxyRig,
) -> None:
    from chat.stream import STREAM_PATH

    with proxy.http() as client:
        stream = client.post(f"/{STREAM_PATH}", json={}, headers={"origin": ORIGIN})
        login = client.get("/accounts/login/", headers={"origin": ORIGIN})
    for response in (stream, login):
        assert not any(name.startswith("access-control-") for name in response.headers)
