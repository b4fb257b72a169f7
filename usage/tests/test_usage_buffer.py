"""The usage buffer under a database that refuses writes: bounded memory,
spool to disk, replay, drain on shutdown, each record written exactly once.

The refusing database is a stand-in writer here; tests/test_usage_outage.py
cuts a real Postgres connection under a running server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.db import OperationalError
from django.utils import timezone

from usage import buffer as buffer_module
from usage.buffer import UsageBuffer
from usage.models import UsageRecord
from usage.outcome import RequestOutcome
from usage.periods import window_of
from usage.quota import counter_key, local_counters, quota_check
from usage.services import quota_set
from usage.spool import spool_dir
from usage.tests.asyncdb import db

pytestmark = pytest.mark.django_db(transaction=True)


class Database:
    """Switches the buffer's writer between the real one and a refusal."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.up = True
        self.attempts = 0
        real = buffer_module.usage_rows_write

        def write(rows):  # type: ignore[no-untyped-def]
            self.attempts += 1
            if not self.up:
                raise OperationalError("connection refused")
            return real(rows)

        monkeypatch.setattr(buffer_module, "usage_rows_write", write)


@pytest.fixture
def database(monkeypatch, settings, tmp_path: Path) -> Database:  # type: ignore[no-untyped-def]
    settings.DATA_DIR = tmp_path
    settings.USAGE_BUFFER_MAX_RECORDS = 5
    settings.USAGE_FLUSH_BATCH = 4
    return Database(monkeypatch)


def outcome(user_id: int, tokens: int = 10) -> RequestOutcome:
    return RequestOutcome(
        request_id="req_" + uuid.uuid4().hex,
        endpoint="chat/completions",
        user_id=user_id,
        model="fake-chat",
        status=200,
        prompt_tokens=tokens,
        completion_tokens=tokens,
        usage_source="reported",
    )


def spooled() -> list[Path]:
    folder = spool_dir()
    return sorted(folder.iterdir()) if folder.exists() else []


async def test_beyond_the_bound_records_are_spooled_then_written_exactly_once(
    alice, database: Database
) -> None:
    buffer = UsageBuffer()
    submitted = [outcome(alice.pk) for _ in range(12)]
    database.up = False
    for item in submitted:
        buffer.add(item)
    assert not await buffer.flush()
    assert len(buffer.rows) == 5 and buffer.spilled == 7
    assert len(spooled()) == 1
    assert not await buffer.flush()  # still down: nothing more spilled
    assert buffer.spilled == 7
    database.up = True
    assert await buffer.flush()
    ids = await db(
        lambda: list(UsageRecord.objects.values_list("request_id", flat=True))
    )
    assert sorted(ids) == sorted(item.request_id for item in submitted)
    assert spooled() == [] and buffer.pending == 0 and buffer.replayed == 7


async def test_a_shutdown_during_an_outage_spools_all_for_the_next_process(
    alice, database: Database
) -> None:
    buffer = UsageBuffer()
    submitted = [outcome(alice.pk) for _ in range(3)]
    database.up = False
    for item in submitted:
        buffer.add(item)
    await buffer.drain(within=0.3)
    assert buffer.pending == 0 and len(spooled()) == 1
    assert await db(UsageRecord.objects.count) == 0
    database.up = True
    successor = UsageBuffer()  # the next process on the same DATA_DIR
    assert await successor.flush()
    assert await db(UsageRecord.objects.count) == 3 and spooled() == []


async def test_a_spool_file_replayed_twice_leaves_one_record_each(
    alice, database: Database
) -> None:
    buffer = UsageBuffer()
    database.up = False
    for _ in range(8):
        buffer.add(outcome(alice.pk))
    await buffer.flush()
    (original,) = spooled()
    copy = original.with_name("0-copy.jsonl")
    copy.write_bytes(original.read_bytes())  # as if two processes replayed it
    database.up = True
    assert await buffer.flush()
    assert await db(UsageRecord.objects.count) == 8
    assert spooled() == []


async def test_each_request_counts_against_the_quota_once_however_often_writes_fail(
    alice, database: Database, settings
) -> None:
    settings.REDIS_URL = None  # in-process counters: read them directly
    await db(quota_set, user=alice, tokens=1_000, period="day")
    await quota_check(user_id=alice.pk, group_ids=(), model_weight=1.0)
    buffer = UsageBuffer()
    database.up = False
    buffer.add(outcome(alice.pk, tokens=10))
    buffer.add(outcome(alice.pk, tokens=5))
    for _ in range(3):
        assert not await buffer.flush()
    database.up = True
    assert await buffer.flush()
    assert database.attempts >= 4
    start, _ = window_of("day", timezone.now())
    assert local_counters.get(counter_key(alice.pk, "day", start)) == 30
