"""Admin: the usage report by user, group and model, and quota editing."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from tests.factories import usage_record_make
from usage.models import Quota

pytestmark = pytest.mark.django_db

REPORT = "/admin/usage/usagereport/"


@pytest.fixture
def usage(alice, bob, charlie):  # type: ignore[no-untyped-def]
    physics = Group.objects.create(name="physics")
    alice.groups.add(physics)
    bob.groups.add(physics)
    at = datetime(2026, 3, 10, 12, tzinfo=UTC)
    usage_record_make(user=alice, started_at=at, prompt_tokens=100, completion_tokens=0)
    usage_record_make(user=bob, started_at=at, model="big", weight=3)
    usage_record_make(user=charlie, started_at=at, status=500, completion_tokens=0)
    usage_record_make(user=charlie, started_at=datetime(2026, 4, 1, tzinfo=UTC))


def report(client: Client, by: str, fmt: str = "") -> str:
    query = f"?since=2026-03-01&until=2026-03-31&by={by}"
    response = client.get(REPORT + query + (f"&format={fmt}" if fmt else ""))
    assert response.status_code == 200
    return response.content.decode()


def test_the_report_totals_usage_by_user_group_and_model(
    client: Client, staff, usage
) -> None:
    client.force_login(staff)
    by_user = list(csv.reader(io.StringIO(report(client, "user", "csv"))))
    assert by_user[0] == [
        "user", "requests", "errors", "prompt_tokens", "completion_tokens",
        "weighted_tokens",
    ]  # fmt: skip
    assert by_user[1:] == [
        ["alice", "1", "0", "100", "0", "100"],
        ["bob", "1", "0", "10", "5", "45"],
        ["charlie", "1", "1", "10", "0", "10"],
        ["TOTAL", "3", "1", "120", "5", "155"],
    ]
    by_group = list(csv.reader(io.StringIO(report(client, "group", "csv"))))
    assert by_group[1:] == [
        ["physics", "2", "0", "110", "5", "145"],
        ["(no group)", "1", "1", "10", "0", "10"],
        ["TOTAL", "3", "1", "120", "5", "155"],
    ]
    page = report(client, "model")
    assert "fake-chat" in page and "big" in page and "Download CSV" in page


def test_the_report_is_for_staff_only(client: Client, alice) -> None:
    client.force_login(alice)
    assert client.get(REPORT).status_code == 302


def test_staff_set_a_group_quota_in_admin(client: Client, staff) -> None:
    physics = Group.objects.create(name="physics")
    client.force_login(staff)
    response = client.post(
        "/admin/usage/quota/add/",
        {"group": physics.pk, "tokens": 5000, "period": "week"},
    )
    assert response.status_code == 302, response.content[:2000]
    assert Quota.objects.get(group=physics).tokens == 5000
    both = client.post(
        "/admin/usage/quota/add/",
        {"group": physics.pk, "user": staff.pk, "tokens": 1, "period": "day"},
    )
    assert b"not both" in both.content
