"""Remote media URLs through the real proxy: Portico fetches each from a real
media host on loopback (tests.mediaserver, reached through
MEDIA_FETCH_ALLOW_NETWORKS=127.0.0.1/32) and the fake backend receives it
inline. Every refusal is a 400 naming the part."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from apiproxy.errors import ProxyError
from apiproxy.mediafetch import AddrInfo, CheckingResolver, media_inline
from apiproxy.parsing import request_parse
from tests.fixtures_proxy import ProxyRig
from tests.mediaserver import PNG, MediaServer

IMAGE = "messages[0].content[1].image_url.url"


@pytest.fixture
def media(settings: Any) -> Iterator[MediaServer]:
    settings.MEDIA_FETCH = True
    settings.MEDIA_FETCH_ALLOW_NETWORKS = ["127.0.0.1/32"]
    settings.MEDIA_FETCH_TIMEOUT = 5.0
    with MediaServer() as server:
        yield server


@pytest.fixture
def rig(proxy: ProxyRig, media: MediaServer) -> ProxyRig:
    from apiproxy.catalog import catalog
    from catalog.models import Model

    Model.objects.filter(public_id="fake-chat").update(
        supports_vision=True, supports_audio=True
    )
    catalog.invalidate()
    return proxy


def _chat(*urls: str, kind: str = "image_url") -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": "What is this?"}]
    for url in urls:
        if kind == "file":
            parts.append({"type": "file", "file": {"file_url": url}})
        else:
            parts.append({"type": kind, kind: {"url": url}})
    return {"model": "fake-chat", "messages": [{"role": "user", "content": parts}]}


def _post(rig: ProxyRig, body: dict[str, Any], path: str = "/v1/chat/completions"):  # type: ignore[no-untyped-def]
    with rig.http() as client:
        return client.post(path, json=body)


def _refusal(rig: ProxyRig, body: dict[str, Any]) -> dict[str, Any]:
    response = _post(rig, body)
    assert response.status_code == 400, response.text
    return response.json()["error"]


def _png_data_url() -> str:
    return "data:image/png;base64," + base64.b64encode(PNG).decode()


def test_a_remote_image_reaches_the_backend_inline(
    rig: ProxyRig, media: MediaServer
) -> None:
    response = _post(rig, _chat(f"{media.url}/image.png"))
    assert response.status_code == 200, response.text
    sent = rig.backend.last("/v1/chat/completions").json
    assert sent["messages"][0]["content"][1]["image_url"]["url"] == _png_data_url()
    assert media.paths() == ["/image.png"]


@pytest.mark.parametrize(
    ("kind", "name", "prefix"),
    [
        ("video_url", "clip.mp4", "data:video/mp4;base64,"),
        ("audio_url", "sound.wav", "data:audio/wav;base64,"),
        ("file", "paper.pdf", "data:application/pdf;base64,"),
    ],
)
def test_video_audio_and_files_are_inlined_too(
    rig: ProxyRig, media: MediaServer, kind: str, name: str, prefix: str
) -> None:
    response = _post(rig, _chat(f"{media.url}/{name}", kind=kind))
    assert response.status_code == 200, response.text
    part = rig.backend.last("/v1/chat/completions").json["messages"][0]["content"][1]
    url = part["file"]["file_url"] if kind == "file" else part[kind]["url"]
    assert url.startswith(prefix)


def test_responses_input_images_and_files_are_inlined(
    rig: ProxyRig, media: MediaServer
) -> None:
    body = {
        "model": "fake-chat",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Read these."},
                    {"type": "input_image", "image_url": f"{media.url}/image.png"},
                    {"type": "input_file", "file_url": f"{media.url}/paper.pdf"},
                ],
            }
        ],
    }
    response = _post(rig, body, "/v1/responses")
    assert response.status_code == 200, response.text
    content = rig.backend.last("/v1/responses").json["input"][0]["content"]
    assert content[1]["image_url"] == _png_data_url()
    assert content[2]["file_url"].startswith("data:application/pdf;base64,")


def test_the_media_host_gets_no_credentials_cookies_or_portico_headers(
    rig: ProxyRig, media: MediaServer
) -> None:
    with rig.http() as client:
        response = client.post(
            "/v1/chat/completions",
            json=_chat(f"{media.url}/cookie"),
            headers={"cookie": "sessionid=user-secret", "x-request-id": "mine"},
        )
    assert response.status_code == 200, response.text
    assert media.paths() == ["/cookie", "/image.png"]
    for seen in media.seen:
        assert seen.headers["user-agent"] == "Portico-media-fetch"
        assert seen.headers["accept"] == "image/*"
        assert seen.headers["host"] == f"127.0.0.1:{media.port}"
        assert not {"authorization", "cookie", "x-request-id"} & set(seen.headers)
        assert not any(name.startswith(("x-", "openai")) for name in seen.headers)
        assert rig.key not in json.dumps(seen.headers)


def test_several_urls_are_fetched_at_once_but_at_most_four(
    rig: ProxyRig, media: MediaServer
) -> None:
    urls = [f"{media.url}/delayed/300/image.png?n={n}" for n in range(8)]
    started = time.monotonic()
    response = _post(rig, _chat(*urls))
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 8 * 0.3
    assert 2 <= media.most_in_flight <= 4
    parts = rig.backend.last("/v1/chat/completions").json["messages"][0]["content"]
    assert all(p["image_url"]["url"] == _png_data_url() for p in parts[1:])


def test_more_urls_than_allowed_are_refused_naming_the_first_extra(
    rig: ProxyRig, media: MediaServer, settings: Any
) -> None:
    settings.MEDIA_FETCH_MAX_URLS = 2
    error = _refusal(rig, _chat(*[f"{media.url}/image.png"] * 3))
    assert error["param"] == "messages[0].content[3].image_url.url"
    assert "at most 2 remote media URLs" in error["message"]
    assert media.seen == []


FAILURES = [
    ("/endless", "larger than 1000 bytes"),
    ("/declared-huge", "larger than 1000 bytes"),
    ("/page.html", "content type 'text/html' where an image"),
    ("/image.bin", "content type 'application/octet-stream'"),
    ("/status/404", "answered HTTP 404"),
    ("/status/500", "answered HTTP 500"),
    ("/hops/4", "redirects more than 3 times"),
    ("/to?location=http://127.0.0.2:9/x.png", "a loopback address"),
    ("/to?location=http://169.254.169.254/latest/", "a link-local address"),
    ("/to?location=http://[::1]:9/x.png", "a loopback address"),
    ("/to?location=http://2130706433/", "non-standard form"),
    ("/to?location=file:///etc/passwd", "only http and https"),
    ("/to?location=http://u:p@127.0.0.1/", "user name or password"),
]


def test_each_failure_is_a_400_naming_the_part_and_the_reason(
    rig: ProxyRig, media: MediaServer, settings: Any
) -> None:
    settings.MEDIA_FETCH_MAX_BYTES = 1000
    for path, words in FAILURES:
        error = _refusal(rig, _chat(media.url + path))
        assert error["param"] == IMAGE, path
        assert error["code"] == "media_fetch_failed", path
        assert f"'{IMAGE}' could not be fetched" in error["message"], path
        assert words in error["message"], (path, error["message"])
    assert rig.backend.requests("/v1/chat/completions") == []


def test_three_redirects_are_followed(rig: ProxyRig, media: MediaServer) -> None:
    response = _post(rig, _chat(f"{media.url}/hops/3"))
    assert response.status_code == 200, response.text
    assert media.paths() == ["/hops/3", "/hops/2", "/hops/1", "/image.png"]


def test_a_slow_media_host_times_out(
    rig: ProxyRig, media: MediaServer, settings: Any
) -> None:
    settings.MEDIA_FETCH_TIMEOUT = 0.5
    started = time.monotonic()
    error = _refusal(rig, _chat(f"{media.url}/slow"))
    assert time.monotonic() - started < 5
    assert "took longer than 0.5 s" in error["message"]
    assert error["param"] == IMAGE


FORBIDDEN = [
    ("http://127.0.0.1:9/a.png", "a loopback address"),
    ("http://127.0.0.2/a.png", "a loopback address"),
    ("http://10.1.2.3/a.png", "a private address"),
    ("http://192.168.1.1/a.png", "a private address"),
    ("http://172.16.0.1/a.png", "a private address"),
    ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
    ("http://100.64.0.1/a.png", "a shared (carrier-grade NAT) address"),
    ("http://224.0.0.1/a.png", "a multicast address"),
    ("http://0.0.0.0/a.png", "an unspecified address"),
    ("http://198.18.0.1/a.png", "a benchmarking address"),
    ("http://192.0.2.1/a.png", "a documentation address"),
    ("http://[::1]/a.png", "a loopback address"),
    ("http://[::]/a.png", "an unspecified address"),
    ("http://[::ffff:127.0.0.1]/a.png", "a loopback address"),
    ("http://[::ffff:a9fe:a9fe]/a.png", "a link-local address"),
    ("http://[64:ff9b::7f00:1]/a.png", "a loopback address"),
    ("http://[64:ff9b::a00:1]/a.png", "a private address"),
    ("http://[2002:7f00:1::]/a.png", "a loopback address"),
    ("http://[2001::1]/a.png", "a Teredo address"),
    ("http://[fe80::1]/a.png", "a link-local address"),
    ("http://[fc00::1]/a.png", "a private (unique local) address"),
    ("http://[ff02::1]/a.png", "a multicast address"),
    ("http://[2001:db8::1]/a.png", "a documentation address"),
    ("http://localhost/a.png", "'localhost' resolves to a loopback address"),
]


def test_every_forbidden_address_is_refused_before_connecting(
    rig: ProxyRig, settings: Any
) -> None:
    settings.MEDIA_FETCH_ALLOW_NETWORKS = []
    for url, words in FORBIDDEN:
        error = _refusal(rig, _chat(url))
        assert error["param"] == IMAGE, url
        assert words in error["message"], (url, error["message"])


UNFETCHABLE = [
    ("http://2130706433/a.png", "non-standard form"),
    ("http://0177.0.0.1/a.png", "non-standard form"),
    ("http://0x7f.1/a.png", "non-standard form"),
    ("http://127.1/a.png", "non-standard form"),
    ("http://0x7f000001/a.png", "non-standard form"),
    ("http://user:secret@example.org/a.png", "user name or password"),
    ("ftp://example.org/a.png", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("gopher://10.0.0.1/", "only http and https"),
    ("http:///a.png", "no host"),
    ("http://[fe80::1%25eth0]/a.png", "scoped"),
]


def test_unfetchable_url_forms_are_refused_at_once(
    rig: ProxyRig, media: MediaServer
) -> None:
    for url, words in UNFETCHABLE:
        error = _refusal(rig, _chat(url))
        assert error["param"] == IMAGE, url
        assert f"'{IMAGE}' cannot be fetched" in error["message"], url
        assert words in error["message"], (url, error["message"])
    assert media.seen == []


def test_media_fetch_off_keeps_the_inline_only_refusal(
    rig: ProxyRig, media: MediaServer, settings: Any
) -> None:
    settings.MEDIA_FETCH = False
    error = _refusal(rig, _chat(f"{media.url}/image.png"))
    assert error["param"] == IMAGE
    assert "must be an inline data URL" in error["message"]
    assert media.seen == []


def test_an_unauthenticated_request_makes_portico_fetch_nothing(
    rig: ProxyRig, media: MediaServer
) -> None:
    import httpx

    response = httpx.post(
        rig.base_url + "/chat/completions",
        json=_chat(f"{media.url}/image.png"),
        headers={"authorization": "Bearer sk-nobody"},
    )
    assert response.status_code == 401
    refused = _post(rig, {**_chat(f"{media.url}/image.png"), "model": "nope"})
    assert refused.status_code >= 400
    assert media.seen == []


def test_fetches_are_counted_and_logged_with_the_host_only(
    rig: ProxyRig, media: MediaServer, caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import REGISTRY

    def count(outcome: str) -> float:
        value = REGISTRY.get_sample_value(
            "portico_media_fetches_total", {"outcome": outcome}
        )
        return value or 0.0

    before_ok, before_status = count("ok"), count("http_status")
    bytes_before = REGISTRY.get_sample_value("portico_media_fetch_bytes_total") or 0
    with caplog.at_level(logging.INFO, logger="portico.requests"):
        assert _post(rig, _chat(f"{media.url}/image.png?token=s3cr3t")).is_success
        _refusal(rig, _chat(f"{media.url}/status/403?sig=s3cr3t"))
    assert count("ok") == before_ok + 1
    assert count("http_status") == before_status + 1
    after = REGISTRY.get_sample_value("portico_media_fetch_bytes_total") or 0
    assert after - bytes_before == len(PNG)
    lines = [
        m for r in caplog.records if (m := r.getMessage()).startswith("media_fetch ")
    ]
    assert len(lines) == 2
    assert all("host=127.0.0.1" in line for line in lines)
    assert "outcome=ok" in lines[0] and f"bytes={len(PNG)}" in lines[0]
    assert not any("s3cr3t" in line or "/status" in line for line in lines)


# -- a name service standing in for DNS: what the connector connects to -----


class _TableResolver(CheckingResolver):
    """Answers from a fixed table instead of the system's name service."""

    table: dict[str, list[str]] = {}
    lookups: list[str] = []

    async def lookup(
        self, host: str, port: int, family: socket.AddressFamily
    ) -> list[AddrInfo]:
        self.lookups.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in self.table[host]
        ]


def _inline(url: str, table: dict[str, list[str]]) -> dict[str, Any]:
    _TableResolver.table, _TableResolver.lookups = table, []
    parsed = request_parse("chat/completions", json.dumps(_chat(url)).encode())
    asyncio.run(media_inline(parsed, request_id="req_test", resolver=_TableResolver))
    return parsed.body


def test_a_name_is_resolved_once_and_connected_to_at_the_checked_address(
    media: MediaServer,
) -> None:
    body = _inline(
        f"http://media.example:{media.port}/image.png",
        {"media.example": ["127.0.0.1"]},
    )
    assert body["messages"][0]["content"][1]["image_url"]["url"] == _png_data_url()
    assert _TableResolver.lookups == ["media.example"]
    assert media.seen[0].headers["host"] == f"media.example:{media.port}"


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"cdn.example": ["93.184.215.14", "127.0.0.2"]}, "a loopback address"),
        ({"cdn.example": ["10.0.0.7"]}, "a private address"),
        ({"cdn.example": ["::ffff:169.254.169.254"]}, "a link-local address"),
        ({}, "'cdn.example' does not resolve"),
    ],
)
def test_a_public_looking_name_that_points_inwards_is_refused(
    media: MediaServer, table: dict[str, list[str]], words: str
) -> None:
    with pytest.raises(ProxyError) as raised:
        _inline("http://cdn.example/a.png", table)
    assert raised.value.param == IMAGE
    assert words in str(raised.value.message)


def test_a_redirect_to_a_name_that_points_inwards_is_refused(
    media: MediaServer,
) -> None:
    with pytest.raises(ProxyError) as raised:
        _inline(
            f"{media.url}/to?location=http://metadata.example/latest/",
            {"metadata.example": ["169.254.169.254"]},
        )
    assert "resolves to a link-local address" in raised.value.message
    assert media.paths() == ["/to"]
