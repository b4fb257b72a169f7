"""The meter's batch insert on PostgreSQL: every field as given, bogus counts
clamped instead of failing the batch, idempotent by request id.
(The SQLite path is driven end to end by tests/test_runportal.py.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from tests.fixtures_proxy import ProxyRig
from usage.metering import MeteredRow
from usage.models import UsageRecord
from usage.recordwrite import usage_records_create

pytestmark = pytest.mark.django_db

STARTED = datetime(2026, 3, 10, 9, 30, 15, 123456, tzinfo=UTC)


def row(user: User, **fields: object) -> MeteredRow:
    values: dict[str, object] = {
        "request_id": "req_" + uuid.uuid4().hex,
        "user_id": user.pk,
        "key_id": None,
        "model": "fake-chat",
        "backend_id": None,
        "endpoint": "chat/completions",
        "client": "api",
        "stream": True,
        "status": 200,
        "finish_reason": "stop",
        "prompt_tokens": 12,
        "completion_tokens": 34,
        "usage_source": "reported",
        "weighted_tokens": 46,
        "ttft_ms": 21,
        "duration_ms": 250,
        "retry_count": 0,
        "started_at": STARTED,
    }
    values.update(fields)
    return MeteredRow(**values)  # type: ignore[arg-type]


def test_every_field_is_written_as_given(alice: User) -> None:
    browser = row(
        alice,
        client="browser",
        stream=False,
        status=499,
        finish_reason="client_disconnect",
        usage_source="counted",
        ttft_ms=None,
        retry_count=2,
        key_id=None,
        backend_id=7,
    )
    api = row(alice, key_id=3, model="big", weighted_tokens=92)
    before = timezone.now()
    assert usage_records_create(rows=[browser, api]) == 2
    written = {r.request_id: r for r in UsageRecord.objects.all()}
    assert set(written) == {browser.request_id, api.request_id}
    for source in (browser, api):
        record = written[source.request_id]
        for name in MeteredRow.__dataclass_fields__:
            assert getattr(record, name) == getattr(source, name), name
        assert before <= record.recorded_at <= timezone.now()
        assert record.rollup_batch is None


def test_bogus_counts_are_clamped_and_long_names_cut_instead_of_failing_the_batch(
    alice: User,
) -> None:
    bogus = row(
        alice,
        prompt_tokens=10**12,
        completion_tokens=-5,
        status=70000,
        retry_count=10**6,
        duration_ms=-1,
        weighted_tokens=-3,
        model="m" * 300,
        finish_reason="f" * 60,
    )
    # A backend reporting an absurd count, times a model's weight.
    huge = row(alice, prompt_tokens=10**30, weighted_tokens=10**30)
    fine = row(alice)
    usage_records_create(rows=[bogus, huge, fine])
    assert UsageRecord.objects.get(request_id=huge.request_id).weighted_tokens == (
        2**63 - 1
    )
    record = UsageRecord.objects.get(request_id=bogus.request_id)
    assert record.prompt_tokens == 2_147_483_647
    assert (record.completion_tokens, record.duration_ms) == (0, 0)
    assert (record.status, record.retry_count) == (32767, 32767)
    assert record.weighted_tokens == 0
    assert (len(record.model), len(record.finish_reason)) == (200, 40)
    assert UsageRecord.objects.filter(request_id=fine.request_id).exists()


def test_a_batch_written_again_or_overlapping_leaves_one_record_each(
    alice: User,
) -> None:
    first = [row(alice, started_at=STARTED + timedelta(seconds=i)) for i in range(5)]
    usage_records_create(rows=first)
    # A retry after an unclear failure, and a spool replay overlapping it.
    usage_records_create(rows=first)
    overlap = first[3:] + [row(alice) for _ in range(3)]
    assert usage_records_create(rows=overlap) == 5
    assert UsageRecord.objects.count() == 8
    assert usage_records_create(rows=[]) == 0


def test_text_postgresql_cannot_store_is_replaced_not_fatal_to_the_batch(
    alice: User,
) -> None:
    """A client names the model and the path: NUL bytes and lone surrogates
    would make PostgreSQL (or the UTF-8 encoder) refuse the whole batch."""
    nul = row(alice, model="fake\x00chat", endpoint="chat/\x00")
    surrogate = row(alice, model="fake-\ud800-chat", finish_reason="stop\udfff")
    unicode = row(alice, model="modèle-ünïcode-✓")
    fine = row(alice)
    usage_records_create(rows=[nul, surrogate, unicode, fine])
    written = {r.request_id: r for r in UsageRecord.objects.all()}
    assert len(written) == 4
    assert written[nul.request_id].model == "fake\ufffdchat"
    assert written[nul.request_id].endpoint == "chat/\ufffd"
    assert written[surrogate.request_id].model == "fake-?-chat"
    assert written[surrogate.request_id].finish_reason == "stop?"
    assert written[unicode.request_id].model == "modèle-ünïcode-✓"


def test_a_large_batch_is_written_whole(alice: User) -> None:
    rows = [row(alice, model=f"model-{i % 7}") for i in range(2000)]
    assert usage_records_create(rows=rows) == 2000
    assert UsageRecord.objects.count() == 2000
    assert UsageRecord.objects.filter(model="model-3").count() == 286


@pytest.mark.django_db(transaction=True)
def test_a_request_naming_a_model_with_a_nul_byte_is_metered_with_the_rest(
    proxy: ProxyRig,
) -> None:
    with proxy.http() as http:
        odd = http.post(
            "/v1/chat/completions",
            content=b'{"model": "fake\\u0000chat\\ud800", "messages": '
            b'[{"role": "user", "content": "hi"}]}',
            headers={"content-type": "application/json"},
        )
        fine = http.post(
            "/v1/chat/completions",
            json={
                "model": "fake-chat",
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert odd.status_code == 404 and odd.json()["error"]["code"] == "model_not_found"
    assert fine.status_code == 200
    refused = proxy.usage_record(odd.headers["x-request-id"])
    # An unknown model is metered under one name (the writer would also
    # have replaced what PostgreSQL cannot store: see the test above).
    assert refused.model == "(unknown model)" and refused.status == 404
    assert proxy.usage_record(fine.headers["x-request-id"]).status == 200
