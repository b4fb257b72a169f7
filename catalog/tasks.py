"""Periodic jobs of the catalog; each is also a management command."""

from __future__ import annotations

from catalog.services import backend_discover_all
from portal.celery import app


@app.task(name="catalog.discover_models", ignore_result=True)
def discover_models() -> int:
    """Refresh every enabled backend's models (`manage.py discovermodels`).

    Returns how many backends answered. Backend failures are recorded on the
    backends, never raised, so one dead backend cannot stop the schedule.
    """
    return sum(result.ok for result in backend_discover_all())
