"""Reasoning tokens travel with the rest of a request's outcome: from the
proxy's RequestOutcome through the buffer's row and the spool file to the
record, as a part of the completion tokens (never more than them)."""

from __future__ import annotations

import json

import pytest

from accounts.models import User
from usage.metering import MeteredRow, row_from_outcome
from usage.models import UsageRecord
from usage.outcome import RequestOutcome
from usage.recordwrite import usage_records_create
from usage.tests.test_usage_write import row

pytestmark = pytest.mark.django_db


def test_the_outcomes_reasoning_tokens_reach_the_row(alice: User) -> None:
    outcome = RequestOutcome(
        request_id="req_thinking",
        endpoint="chat/completions",
        user_id=alice.pk,
        completion_tokens=40,
        reasoning_tokens=25,
    )
    assert row_from_outcome(outcome).reasoning_tokens == 25


def test_reasoning_is_never_more_than_the_completion_it_is_part_of(
    alice: User,
) -> None:
    outcome = RequestOutcome(
        request_id="req_odd",
        endpoint="chat/completions",
        user_id=alice.pk,
        completion_tokens=3,
        reasoning_tokens=9,
    )
    metered = row_from_outcome(outcome)
    assert (metered.completion_tokens, metered.reasoning_tokens) == (3, 3)
    assert metered.weighted_tokens == 3, "thoughts are not billed twice"


def test_a_spooled_row_keeps_its_reasoning_and_an_older_one_still_loads(
    alice: User,
) -> None:
    thinking = row(alice, reasoning_tokens=17)
    assert MeteredRow.from_json(thinking.to_json()).reasoning_tokens == 17
    older = json.loads(thinking.to_json())
    del older["reasoning_tokens"]  # spooled before it was metered
    assert MeteredRow.from_json(json.dumps(older)).reasoning_tokens == 0


def test_the_record_is_written_with_its_reasoning_tokens(alice: User) -> None:
    thinking = row(alice, reasoning_tokens=30)
    plain = row(alice)
    usage_records_create(rows=[thinking, plain])
    written = dict(UsageRecord.objects.values_list("request_id", "reasoning_tokens"))
    assert written == {thinking.request_id: 30, plain.request_id: 0}


def test_reasoning_tokens_are_rolled_up_and_shown_in_settings_usage(
    alice: User, client
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import usage_record_make
    from usage.models import DailyUsage, HourlyUsage
    from usage.rollups import usage_rollup, usage_rollup_rebuild

    earlier = timezone.now() - timedelta(hours=2)
    for thinking in (30, 12):
        usage_record_make(
            user=alice,
            started_at=earlier,
            completion_tokens=50,
            reasoning_tokens=thinking,
        )
    usage_rollup()
    assert sum(h.reasoning_tokens for h in HourlyUsage.objects.all()) == 42
    assert sum(d.reasoning_tokens for d in DailyUsage.objects.all()) == 42
    day = timezone.localdate(earlier)
    usage_rollup_rebuild(since=day, until=day + timedelta(days=1))
    assert sum(d.reasoning_tokens for d in DailyUsage.objects.all()) == 42
    client.force_login(alice)
    page = client.get("/settings/usage/").content.decode()
    assert "of which thinking" in page and ">42<" in page
