"""The rollup job: exactly once, idempotent, late records, rebuilds, retention."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command

from tests.factories import usage_record_make
from usage.models import DailyUsage, HourlyUsage, RollupState, UsageRecord
from usage.rollups import usage_rollup, usage_rollup_rebuild
from usage.services import usage_records_prune

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 9, 15, tzinfo=UTC)
FIELDS = ("requests", "errors", "prompt_tokens", "completion_tokens", "weighted_tokens")


def table(model: Any, when: str) -> dict[tuple[Any, ...], tuple[int, ...]]:
    return {
        (getattr(row, when), row.user_id, row.key_id, row.model): tuple(
            getattr(row, name) for name in FIELDS
        )
        for row in model.objects.all()
    }


def totals() -> tuple[dict[tuple[Any, ...], tuple[int, ...]], ...]:
    return table(HourlyUsage, "hour"), table(DailyUsage, "day")


def mixed_records(alice, bob) -> None:  # type: ignore[no-untyped-def]
    for minutes in range(0, 180, 20):
        usage_record_make(user=alice, started_at=T0 + timedelta(minutes=minutes))
    usage_record_make(user=alice, started_at=T0, model="big", weight=2.5)
    usage_record_make(user=bob, started_at=T0, status=502, completion_tokens=0)
    usage_record_make(
        user=bob, started_at=T0 + timedelta(days=1), client="browser", key_id=None
    )


def test_a_rollup_run_twice_gives_identical_totals(alice, bob) -> None:
    mixed_records(alice, bob)
    first = usage_rollup()
    after_first = totals()
    second = usage_rollup()
    assert first.records == 12 and second.records == 0
    assert totals() == after_first
    hourly, daily = after_first
    assert hourly[(T0.replace(minute=0), alice.pk, 0, "fake-chat")] == (
        3,
        0,
        30,
        15,
        45,
    )
    assert hourly[(T0.replace(minute=0), alice.pk, 0, "big")] == (1, 0, 10, 5, 38)
    assert daily[(date(2026, 3, 10), bob.pk, 0, "fake-chat")] == (1, 1, 10, 0, 10)
    assert sum(v[0] for v in daily.values()) == UsageRecord.objects.count()


def test_the_sums_of_both_tables_equal_the_raw_records(alice, bob) -> None:
    mixed_records(alice, bob)
    call_command("rollupusage", stdout=io.StringIO())
    hourly, daily = totals()
    raw = UsageRecord.objects.all()
    for index, name in enumerate(FIELDS[2:], start=2):
        expected = sum(getattr(record, name) for record in raw)
        assert sum(v[index] for v in hourly.values()) == expected
        assert sum(v[index] for v in daily.values()) == expected


def test_a_record_that_arrives_after_its_hour_was_rolled_up_is_still_counted(
    alice,
) -> None:
    usage_record_make(user=alice, started_at=T0)
    usage_rollup()
    state = RollupState.objects.get(name="usage")
    assert state.state == "done" and state.rolled_through is not None
    # Written hours later (a Postgres outage, a spool file replayed): its
    # started_at lies far behind the watermark.
    late = usage_record_make(user=alice, started_at=T0 + timedelta(minutes=5))
    assert late.recorded_at > state.rolled_through
    assert usage_rollup().records == 1
    hour = HourlyUsage.objects.get(hour=T0.replace(minute=0))
    assert (hour.requests, hour.prompt_tokens) == (2, 20)
    assert DailyUsage.objects.get(day=date(2026, 3, 10)).requests == 2


def test_a_rebuild_recomputes_the_same_totals_as_the_incremental_runs(
    alice, bob
) -> None:
    mixed_records(alice, bob)
    usage_rollup()
    incremental = totals()
    # Damage the tables the way a bug might; the rebuild repairs them from raw.
    HourlyUsage.objects.update(requests=999)
    DailyUsage.objects.filter(user=bob).delete()
    usage_rollup_rebuild(since=date(2026, 3, 9), until=date(2026, 3, 13))
    assert totals() == incremental
    usage_rollup_rebuild(since=date(2026, 3, 9), until=date(2026, 3, 13))
    usage_rollup()
    assert totals() == incremental


def test_a_rebuild_also_counts_records_that_were_still_pending(alice) -> None:
    usage_record_make(user=alice, started_at=T0)
    usage_rollup()
    usage_record_make(user=alice, started_at=T0)
    usage_rollup_rebuild(since=date(2026, 3, 10), until=date(2026, 3, 11))
    assert DailyUsage.objects.get().requests == 2
    assert HourlyUsage.objects.get().requests == 2
    assert not UsageRecord.objects.filter(rollup_batch__isnull=True).exists()


def test_daily_totals_follow_the_portal_time_zone(alice, settings) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    # 23:30 UTC on the 10th is 00:30 on the 11th in Berlin.
    usage_record_make(user=alice, started_at=datetime(2026, 3, 10, 23, 30, tzinfo=UTC))
    usage_rollup()
    assert DailyUsage.objects.get().day == date(2026, 3, 11)
    assert HourlyUsage.objects.get().hour == datetime(2026, 3, 10, 23, tzinfo=UTC)


def test_pruning_keeps_rollups_and_records_not_yet_counted(alice, settings) -> None:
    settings.USAGE_RETENTION_DAYS = 30
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    old = usage_record_make(user=alice, started_at=now - timedelta(days=40))
    recent = usage_record_make(user=alice, started_at=now - timedelta(days=2))
    usage_rollup()
    late = usage_record_make(user=alice, started_at=now - timedelta(days=45))
    result = usage_records_prune(now=now)
    assert result.deleted == 1 and result.kept_unrolled == 1
    remaining = set(UsageRecord.objects.values_list("pk", flat=True))
    assert remaining == {recent.pk, late.pk} and old.pk not in remaining
    assert DailyUsage.objects.filter(day=(now - timedelta(days=40)).date()).exists()
    usage_rollup()
    assert usage_records_prune(now=now).deleted == 1
    assert DailyUsage.objects.filter(day=(now - timedelta(days=45)).date()).exists()


def test_a_rebuild_refuses_days_whose_raw_records_were_pruned(alice, settings) -> None:
    settings.USAGE_RETENTION_DAYS = 30
    usage_records_prune(now=datetime(2026, 6, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="pruned"):
        usage_rollup_rebuild(since=date(2026, 4, 1), until=date(2026, 4, 2))
