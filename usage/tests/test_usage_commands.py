"""The operator commands: setquota, exportusage, rollupusage, pruneusage."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from tests.factories import usage_record_make
from usage.models import DailyUsage, Quota

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 9, 15, tzinfo=UTC)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_setquota_sets_a_user_override_and_a_group_default(alice) -> None:
    Group.objects.create(name="physics")
    assert "1,000 tokens per day" in run(
        "setquota", "--user", "alice", "--tokens", "1000", "--period", "day"
    )
    run("setquota", "--group", "physics", "--tokens", "50000", "--period", "month")
    run("setquota", "--user", "alice", "--tokens", "2000", "--period", "week")
    assert Quota.objects.get(user=alice).tokens == 2000
    assert Quota.objects.get(group__name="physics").period == "month"
    run("setquota", "--group", "physics", "--clear")
    assert Quota.objects.count() == 1


def test_setquota_refuses_unknown_names_and_both_targets(alice) -> None:
    with pytest.raises(CommandError, match="No user"):
        run("setquota", "--user", "nobody", "--tokens", "1", "--period", "day")
    with pytest.raises(CommandError):
        run("setquota", "--user", "alice", "--group", "x", "--tokens", "1")
    with pytest.raises(CommandError, match="required"):
        run("setquota", "--user", "alice", "--tokens", "1")


def records(alice, bob):  # type: ignore[no-untyped-def]
    first = usage_record_make(user=alice, started_at=T0, key_id=None, ttft_ms=None)
    second = usage_record_make(
        user=bob, started_at=datetime(2026, 3, 12, tzinfo=UTC), client="browser"
    )
    third = usage_record_make(
        user=alice,
        started_at=datetime(2026, 3, 14, tzinfo=UTC),
        usage_source="counted",
        finish_reason="client_disconnect",
    )
    return first, second, third


def test_exportusage_writes_a_json_array_with_the_issues_fields(alice, bob) -> None:
    first, second, third = records(alice, bob)
    rows = json.loads(run("exportusage", "--format", "json"))
    assert [row["request_id"] for row in rows] == [
        first.request_id,
        second.request_id,
        third.request_id,
    ]
    assert list(rows[0]) == [
        "request_id", "user", "key_id", "model", "endpoint", "prompt_tokens",
        "completion_tokens", "usage_source", "status", "finish_reason",
        "started_at", "ttft_ms", "duration_ms", "client", "project", "reasoning_tokens",
    ]  # fmt: skip
    assert rows[0]["user"] == "alice" and rows[0]["key_id"] is None
    assert rows[0]["ttft_ms"] is None and rows[0]["started_at"].startswith("2026-03-10")
    assert rows[1]["client"] == "browser"
    assert rows[2]["usage_source"] == "counted"


def test_exportusage_filters_by_user_and_since_as_csv(alice, bob) -> None:
    *_, third = records(alice, bob)
    rows = list(
        csv.DictReader(
            io.StringIO(
                run("exportusage", "--user", "alice", "--since", "2026-03-11",
                    "--format", "csv")
            )
        )
    )  # fmt: skip
    assert [row["request_id"] for row in rows] == [third.request_id]
    assert rows[0]["finish_reason"] == "client_disconnect"
    assert (
        json.loads(run("exportusage", "--since", "2030-01-01", "--format", "json"))
        == []
    )


def test_exportusage_refuses_a_bad_date(alice) -> None:
    with pytest.raises(CommandError, match="ISO"):
        run("exportusage", "--since", "yesterday", "--format", "csv")


def test_rollupusage_rolls_up_and_rebuilds(alice, bob) -> None:
    records(alice, bob)
    assert "Rolled up 3 records" in run("rollupusage")
    assert "Rolled up 0 records" in run("rollupusage")
    before = sorted(DailyUsage.objects.values_list("day", "user_id", "requests"))
    assert "Rebuilt 3 daily" in run(
        "rollupusage", "--rebuild", "--since", "2026-03-01", "--until", "2026-04-01"
    )
    assert (
        sorted(DailyUsage.objects.values_list("day", "user_id", "requests")) == before
    )


def test_pruneusage_reports_what_it_deleted(alice, settings) -> None:
    settings.USAGE_RETENTION_DAYS = 1
    usage_record_make(user=alice, started_at=T0)
    run("rollupusage")
    assert "Deleted 1 usage records" in run("pruneusage")
