"""Settings > Usage speaks plainly: outcomes in words, no chart series for a
mistyped model, times labelled with their zone, and a checked date range."""

from __future__ import annotations

from datetime import datetime

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from tests.factories import usage_record_make
from usage.templatetags.usage_words import outcome_words, source_words

URL = "/settings/usage/"
NOW = timezone.now()
pytestmark = pytest.mark.django_db


def test_outcomes_read_as_plain_words(alice) -> None:  # type: ignore[no-untyped-def]
    def record(**fields):  # type: ignore[no-untyped-def]
        return usage_record_make(user=alice, started_at=NOW, **fields)

    assert outcome_words(record(finish_reason="client_disconnect")) == (
        "stopped by you"
    )
    assert outcome_words(record()) == "finished"
    assert outcome_words(record(finish_reason="length")) == (
        "cut off at the length limit"
    )
    assert outcome_words(record(status=429, finish_reason="rejected")) == (
        "refused: over your rate limit or quota"
    )
    assert outcome_words(record(status=404, finish_reason="rejected")) == (
        "refused: no such model"
    )
    assert outcome_words(record(status=502, finish_reason="backend_error")) == (
        "the model's server failed"
    )
    assert source_words("counted") == "counted by Portico"


def test_the_page_shows_words_and_the_time_zone(client: Client, alice) -> None:
    usage_record_make(user=alice, started_at=NOW, finish_reason="client_disconnect")
    client.force_login(alice)
    page = client.get(URL).content.decode()
    assert "stopped by you" in page and ">client_disconnect<" not in page
    assert "times in <span data-zone>UTC</span>" in page
    assert 'aria-current="page">Usage</a>' in page


def test_a_mistyped_model_is_no_chart_series(client: Client, alice) -> None:
    usage_record_make(user=alice, started_at=NOW, model="fake-chat")
    usage_record_make(
        user=alice,
        started_at=NOW,
        model="gtp-4o-mini-typo",
        status=404,
        finish_reason="rejected",
        prompt_tokens=0,
        completion_tokens=0,
    )
    client.force_login(alice)
    page = client.get(URL).content.decode()
    legend = page.split('class="chart-legend"')[1].split("</ul>")[0]
    assert "fake-chat" in legend and "gtp-4o-mini-typo" not in legend
    assert 'data-model="gtp-4o-mini-typo"' not in page
    assert "refused: no such model" in page


@time_machine.travel("2026-03-20 12:00Z", tick=False)
def test_the_range_defaults_to_30_days_and_is_checked(client: Client, alice) -> None:
    usage_record_make(
        user=alice, started_at=datetime.fromisoformat("2026-01-05T12:00Z")
    )
    client.force_login(alice)
    page = client.get(URL).content.decode()
    assert 'name="from" value="2026-02-19"' in page
    assert 'name="to" value="2026-03-20"' in page
    assert 'class="chart-legend"' not in page, "January is outside the 30 days"
    page = client.get(URL, {"from": "2026-01-01", "to": "2026-01-31"}).content
    assert b'data-day="2026-01-05"' in page
    for bad in (
        {"from": "2026-02-01", "to": "2026-01-01"},
        {"from": "2024-01-01", "to": "2026-01-01"},
        {"from": "yesterday", "to": "2026-01-01"},
        {"from": "2026-01-01"},
    ):
        response = client.get(URL, bad)
        assert response.status_code == 200
        assert b'class="errorlist' in response.content
        assert b'name="from" value="2026-02-19"' in response.content
