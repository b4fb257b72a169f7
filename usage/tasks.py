"""Periodic jobs of usage; each is also a management command."""

from __future__ import annotations

from portal.celery import app
from usage.rollups import usage_rollup
from usage.services import quota_counters_reconcile, usage_records_prune


@app.task(name="usage.rollup", ignore_result=True)
def rollup() -> int:
    """Fold new usage records into the hourly and daily totals, then bring the
    quota counters up to the database's figures (`manage.py rollupusage`).
    Returns how many records were rolled up."""
    result = usage_rollup()
    quota_counters_reconcile()
    return result.records


@app.task(name="usage.prune", ignore_result=True)
def prune() -> int:
    """Delete rolled-up raw records past USAGE_RETENTION_DAYS
    (`manage.py pruneusage`). Returns how many were deleted."""
    return usage_records_prune().deleted
