"""Periodic jobs of operations; each is also a management command."""

from __future__ import annotations

from ops.services import backend_check_all
from portal.celery import app


@app.task(name="ops.check_backends", ignore_result=True)
def check_backends() -> int:
    """Health-check every enabled backend (`manage.py checkbackends`).

    Returns how many answered. Failures are recorded on the backends and
    announced to staff, never raised, so one dead backend cannot stop the
    schedule.
    """
    return sum(check.ok for check in backend_check_all())
