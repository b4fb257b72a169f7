"""Writes for usage: batch inserts of request outcomes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from usage.models import UsageRecord

if TYPE_CHECKING:
    from apiproxy.outcome import RequestOutcome

_MAX_SMALL = 32767
_MAX_INT = 2_147_483_647


def _bounded(value: int | None, ceiling: int = _MAX_INT) -> int:
    return max(0, min(int(value or 0), ceiling))


@transaction.atomic
def usage_records_create(*, outcomes: list[RequestOutcome]) -> int:
    """Insert one record per outcome, idempotent by request id: a batch
    written twice (a retry after an unclear failure) leaves one row each."""
    rows = [
        UsageRecord(
            request_id=outcome.request_id,
            user_id=outcome.user_id,
            key_id=outcome.key_id,
            model=outcome.model[:200],
            backend_id=outcome.backend_id,
            endpoint=outcome.endpoint[:40],
            source=outcome.source,
            stream=outcome.stream,
            status=_bounded(outcome.status, _MAX_SMALL),
            finish_reason=outcome.finish_reason[:40],
            prompt_tokens=_bounded(outcome.prompt_tokens),
            completion_tokens=_bounded(outcome.completion_tokens),
            token_source=outcome.usage_source,
            ttft_ms=None if outcome.ttft_ms is None else _bounded(outcome.ttft_ms),
            duration_ms=_bounded(outcome.duration_ms),
            retry_count=_bounded(outcome.retry_count, _MAX_SMALL),
            started_at=outcome.started_at,
        )
        for outcome in outcomes
    ]
    created = UsageRecord.objects.bulk_create(rows, ignore_conflicts=True)
    return len(created)
