"""Refused requests are cheap and bounded: they count against a per-user
budget, and made-up model names are metered under one name."""

from __future__ import annotations

from typing import Any

import httpx

from accounts.services import apikey_create
from apiproxy.admission import UNKNOWN_MODEL
from tests.factories import user_make
from tests.fixtures_proxy import ProxyRig

MESSAGES = [{"role": "user", "content": "hi"}]


def test_a_user_who_keeps_sending_bad_requests_is_slowed_down(
    proxy: ProxyRig, settings: Any
) -> None:
    settings.REFUSALS_PER_MINUTE = 3
    with proxy.http() as http:
        for _ in range(3):
            bad = http.post("/v1/chat/completions", content=b"{not json")
            assert bad.status_code == 400
        good = {"model": "fake-chat", "messages": MESSAGES}
        throttled = http.post("/v1/chat/completions", json=good)
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "too_many_refused_requests"
    assert int(throttled.headers["retry-after"]) >= 1
    # Another user is not affected.
    other = apikey_create(user=user_make(username="bob"), name="b").raw
    with httpx.Client(
        base_url=proxy.server.url, headers={"authorization": f"Bearer {other}"}
    ) as http:
        assert http.post("/v1/chat/completions", json=good).status_code == 200


def test_answers_from_a_backend_never_count(proxy: ProxyRig, settings: Any) -> None:
    settings.REFUSALS_PER_MINUTE = 2
    proxy.backend.behaviour.status = 400
    with proxy.http() as http:
        for _ in range(4):
            response = http.post(
                "/v1/chat/completions",
                json={"model": "fake-chat", "messages": MESSAGES},
            )
            assert response.status_code == 400


def test_made_up_model_names_are_metered_under_one_name(proxy: ProxyRig) -> None:
    with proxy.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": '=HYPERLINK("http://x")', "messages": MESSAGES},
        )
    assert response.status_code == 404
    record = proxy.usage_record(response.headers["x-request-id"])
    assert record.model == UNKNOWN_MODEL
