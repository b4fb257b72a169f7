"""The periodic jobs: on Celery beat's schedule, and the same work as the commands."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.conf import settings

from tests.factories import usage_record_make
from usage import tasks
from usage.models import DailyUsage


def test_beat_runs_the_rollup_and_the_pruning() -> None:
    from portal.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"usage.rollup", "usage.prune"} <= scheduled
    assert {"usage.rollup", "usage.prune"} <= set(app.tasks)


@pytest.mark.django_db
def test_the_tasks_roll_up_then_prune(alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.USAGE_RETENTION_DAYS = 1
    usage_record_make(user=alice, started_at=datetime(2026, 1, 5, tzinfo=UTC))
    assert tasks.rollup.apply().get() == 1
    assert tasks.prune.apply().get() == 1
    assert DailyUsage.objects.get().requests == 1
