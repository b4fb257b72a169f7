"""quota_check: cached limits and counters, flips at the limit, resets on time
(and the 429 admission makes of an exhausted quota)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Group

from apiproxy.admission import quota_exhausted
from apiproxy.errors import ProxyError
from tests.factories import usage_record_make
from usage import quota as quota_module
from usage.buffer import UsageBuffer
from usage.outcome import RequestOutcome
from usage.quota import counter_key, quota_check
from usage.services import quota_counters_reconcile, quota_set
from usage.tests.asyncdb import db

pytestmark = pytest.mark.django_db(transaction=True)

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(autouse=True)
def _berlin(settings) -> None:  # type: ignore[no-untyped-def]
    settings.TIME_ZONE = "Europe/Berlin"


async def metered(user, *, prompt: int, completion: int, at=None) -> None:  # type: ignore[no-untyped-def]
    """A request ends and the flusher takes it: counted, then written."""
    buffer = UsageBuffer()
    outcome = RequestOutcome(
        request_id=f"req_{id(buffer)}_{prompt}_{completion}",
        endpoint="chat/completions",
        user_id=user.pk,
        model="fake-chat",
        status=200,
        prompt_tokens=prompt,
        completion_tokens=completion,
        usage_source="reported",
    )
    if at is not None:
        outcome.started_at = at
    buffer.add(outcome)
    assert await buffer.flush()


async def admit(user, weight: float = 1.0, groups: tuple[int, ...] = ()):  # type: ignore[no-untyped-def]
    """The state, or admission's refusal when the quota is used up."""
    state = await quota_check(user_id=user.pk, group_ids=groups, model_weight=weight)
    if state.exhausted:
        raise quota_exhausted(state)
    return state


async def test_a_user_without_a_quota_is_admitted_without_quota_headers(alice) -> None:
    state = await admit(alice)
    assert state.limit is None and state.headers() == []


async def test_the_quota_flips_at_the_request_that_reaches_the_limit(alice) -> None:
    await db(quota_set, user=alice, tokens=100, period="day")
    state = await admit(alice)
    assert (state.limit, state.remaining) == (100, 100)
    await metered(alice, prompt=50, completion=10)
    state = await admit(alice)
    assert state.remaining == 40
    assert (b"x-portico-quota-remaining-tokens", b"40") in state.headers()
    await metered(alice, prompt=30, completion=9)
    assert (await admit(alice)).remaining == 1  # 99 used: still admitted
    await metered(alice, prompt=1, completion=0)
    with pytest.raises(ProxyError) as refused:
        await admit(alice)
    error = refused.value
    assert (error.status, error.code, error.type) == (
        429,
        "insufficient_quota",
        "insufficient_quota",
    )
    assert (b"x-should-retry", b"false") in error.headers
    assert (b"x-portico-quota-remaining-tokens", b"0") in error.headers
    assert "resets at" in error.message and "CET" in error.message


async def test_a_model_of_weight_zero_is_admitted_on_an_exhausted_quota(alice) -> None:
    await db(quota_set, user=alice, tokens=0, period="week")
    with pytest.raises(ProxyError):
        await admit(alice, weight=1.0)
    assert (await admit(alice, weight=0.0)).remaining == 0


async def test_a_group_default_applies_and_a_user_override_wins(alice, bob) -> None:
    small = await db(Group.objects.create, name="students")
    large = await db(Group.objects.create, name="staff")
    await db(quota_set, group=small, tokens=1_000, period="day")
    await db(quota_set, group=large, tokens=20_000, period="month")
    await db(quota_set, user=alice, tokens=50, period="day")
    both = (small.pk, large.pk)
    assert (await admit(bob, groups=(small.pk,))).limit == 1_000
    # Most generous per day: 1000/day beats 20000/month (about 667/day).
    assert (await admit(bob, groups=both)).limit == 1_000
    assert (await admit(alice, groups=both)).limit == 50


async def test_the_daily_window_resets_at_local_midnight(alice) -> None:
    await db(quota_set, user=alice, tokens=100, period="day")
    evening = datetime(2026, 3, 10, 23, 0, tzinfo=BERLIN)
    with time_machine.travel(evening, tick=False):
        await metered(alice, prompt=90, completion=20, at=evening)
    with time_machine.travel(datetime(2026, 3, 10, 23, 59, 59, tzinfo=BERLIN)):
        with pytest.raises(ProxyError) as refused:
            await admit(alice)
        assert "2026-03-11 00:00 CET" in refused.value.message
    with time_machine.travel(datetime(2026, 3, 11, 0, 0, 0, tzinfo=BERLIN)):
        state = await admit(alice)
    assert state.remaining == 100
    assert state.resets_at == datetime(2026, 3, 12, tzinfo=BERLIN)


async def test_the_weekly_window_starts_on_monday(alice) -> None:
    await db(quota_set, user=alice, tokens=100, period="week")
    sunday = datetime(2026, 3, 15, 12, tzinfo=BERLIN)
    with time_machine.travel(sunday, tick=False):
        await metered(alice, prompt=100, completion=0, at=sunday)
        with pytest.raises(ProxyError):
            await admit(alice)
    with time_machine.travel(datetime(2026, 3, 16, 0, 0, 1, tzinfo=BERLIN)):
        assert (await admit(alice)).remaining == 100


async def test_the_counter_starts_from_the_database_once_then_costs_no_query(
    alice, monkeypatch
) -> None:
    await db(
        usage_record_make,
        user=alice,
        started_at=datetime.now(BERLIN),
        prompt_tokens=7,
        completion_tokens=3,
    )
    await db(quota_set, user=alice, tokens=100, period="month")
    seeds = []
    real = quota_module.quota_used

    def counting(**kwargs):  # type: ignore[no-untyped-def]
        seeds.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(quota_module, "quota_used", counting)
    for _ in range(5):
        assert (await admit(alice)).remaining == 90
    assert len(seeds) == 1


async def test_without_redis_the_counters_live_in_the_process(alice, settings) -> None:
    settings.REDIS_URL = None
    await db(quota_set, user=alice, tokens=30, period="day")
    assert (await admit(alice)).remaining == 30
    await metered(alice, prompt=20, completion=10)
    with pytest.raises(ProxyError):
        await admit(alice)


async def test_reconciliation_restores_a_lost_counter_and_never_lowers_one(
    alice, bob
) -> None:
    import redis.asyncio
    from django.conf import settings

    from usage.periods import window_of

    await db(quota_set, user=alice, tokens=1_000, period="day")
    await db(quota_set, user=bob, tokens=1_000, period="day")
    for user in (alice, bob):
        await admit(user)
        await metered(user, prompt=100, completion=0)
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    start, _ = window_of("day", datetime.now(BERLIN))
    # Redis lost alice's figure; bob's holds more than the database (requests
    # still in some process's buffer).
    await client.delete(counter_key(alice.pk, "day", start))
    await client.set(counter_key(bob.pk, "day", start), 400)
    await db(quota_counters_reconcile)
    assert int(await client.get(counter_key(alice.pk, "day", start))) == 100
    assert int(await client.get(counter_key(bob.pk, "day", start))) == 400
    await client.aclose()
