"""Quotas through the real proxy and the OpenAI SDK."""

from __future__ import annotations

import time
from decimal import Decimal

import openai
import pytest

from catalog.models import Model
from tests.fixtures_proxy import ProxyRig
from usage.models import UsageRecord
from usage.services import quota_set

MESSAGES = [{"role": "user", "content": "Say something."}]  # 2 prompt tokens


def test_the_sdk_sends_exactly_one_request_for_an_exhausted_quota(
    proxy: ProxyRig,
) -> None:
    quota_set(user=proxy.user, tokens=0, period="month")
    client = proxy.openai(max_retries=2)  # the SDK's default retries
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="fake-chat", messages=MESSAGES)
    error = refused.value
    assert error.code == "insufficient_quota"
    assert error.response.headers["x-should-retry"] == "false"
    assert "resets at" in error.message
    proxy.usage_record(error.response.headers["x-request-id"])
    time.sleep(0.3)  # a retry, had there been one, would have been metered by now
    assert proxy.backend.requests("/v1/chat/completions") == []
    records = UsageRecord.objects.filter(user=proxy.user)
    assert [(r.status, r.finish_reason, r.retry_count) for r in records] == [
        (429, "insufficient_quota", 0)
    ]


def test_the_quota_flips_at_the_right_request_with_the_models_weight(
    proxy: ProxyRig,
) -> None:
    Model.objects.filter(public_id="fake-chat").update(quota_weight=Decimal("2"))
    quota_set(user=proxy.user, tokens=40, period="day")
    client = proxy.openai()
    remaining = []
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="fake-chat", messages=MESSAGES, max_tokens=5
        )
        remaining.append(int(raw.headers["x-portico-quota-remaining-tokens"]))
        record = proxy.usage_record(raw.headers["x-request-id"])
        assert record.weighted_tokens == (2 + 5) * 2
    # Remaining before each request: 40, then 40 - 14, then 40 - 28.
    assert remaining == [40, 26, 12]
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="fake-chat", messages=MESSAGES, max_tokens=5
        )
    assert len(proxy.backend.requests("/v1/chat/completions")) == 3


def test_a_request_without_a_quota_carries_no_quota_headers(proxy: ProxyRig) -> None:
    raw = proxy.openai().chat.completions.with_raw_response.create(
        model="fake-chat", messages=MESSAGES, max_tokens=2
    )
    assert "x-portico-quota-remaining-tokens" not in raw.headers
