"""Settings > Usage: a researcher's own figures, chart, quota and CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import PASSWORD, usage_record_make
from usage.selectors import EXPORT_FIELDS
from usage.services import quota_set

URL = "/settings/usage/"


@pytest.fixture
def alice_usage(alice, bob) -> list[Any]:  # type: ignore[no-untyped-def]
    now = timezone.now()
    records = [
        usage_record_make(user=alice, started_at=now - timedelta(minutes=5)),
        usage_record_make(
            user=alice,
            started_at=now - timedelta(minutes=1),
            model="big-model",
            prompt_tokens=100,
            completion_tokens=50,
            weight=2,
        ),
    ]
    usage_record_make(user=bob, started_at=now, model="bobs-secret-model")
    return records


@pytest.mark.django_db
def test_the_page_shows_the_quota_with_its_reset_the_chart_and_recent_requests(
    client: Client, alice, alice_usage
) -> None:
    quota_set(user=alice, tokens=1_000, period="month")
    client.force_login(alice)
    response = client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<strong>315</strong> of 1,000 tokens used this month" in page
    assert re.search(r'<meter class="quota-bar"[^>]*value="315"', page)
    assert "Resets on" in page
    assert '<svg class="usage-chart"' in page
    assert 'data-model="big-model"' in page and "150 tokens" in page
    for record in alice_usage:
        assert record.request_id in page
    assert "bobs-secret-model" not in page


@pytest.mark.django_db
def test_without_a_quota_the_page_says_so_and_shows_the_month(
    client: Client, alice, alice_usage
) -> None:
    client.force_login(alice)
    page = client.get(URL).content.decode()
    assert "No token quota applies to you" in page
    assert "<meter" not in page


@pytest.mark.django_db
def test_the_page_needs_no_inline_script_or_style(client: Client, alice) -> None:
    client.force_login(alice)
    page = client.get(URL).content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "inline script"
    assert " style=" not in page and "<style" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")


@pytest.mark.django_db
def test_the_csv_export_has_the_export_columns_and_only_the_users_records(
    client: Client, alice, alice_usage
) -> None:
    client.force_login(alice)
    response = client.get(reverse("settings_usage_export"))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert tuple(rows[0]) == EXPORT_FIELDS
    assert [row["request_id"] for row in rows] == [r.request_id for r in alice_usage]
    assert {row["user"] for row in rows} == {"alice"}


@pytest.mark.django_db
def test_someone_signed_out_is_sent_to_log_in(client: Client) -> None:
    for url in (URL, reverse("settings_usage_export")):
        response = client.get(url)
        assert (
            response.status_code == 302 and "/accounts/login/" in response["Location"]
        )


@pytest.mark.browser
def test_the_usage_page_in_a_browser(portal_server: Any, page: Any, alice) -> None:
    now = timezone.now()
    for minutes in (1, 2, 3):
        usage_record_make(user=alice, started_at=now - timedelta(minutes=minutes))
    quota_set(user=alice, tokens=100, period="day")
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(portal_server.url + "/accounts/login/")
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.locator("nav.topnav").get_by_text("Settings").click()
    page.locator("nav.settings-tabs").get_by_text("Usage").click()
    page.wait_for_url("**/settings/usage/")
    assert page.locator("svg.usage-chart rect").count() == 1
    assert page.locator("meter.quota-bar").get_attribute("value") == "45"
    assert page.locator("table.usage-table tbody tr").count() == 3
    with page.expect_download() as download:
        page.get_by_text("Download CSV").click()
    assert download.value.suggested_filename.startswith("usage-alice-")
    assert not [line for line in console if "Content Security Policy" in line]
