"""`manage.py checkbackends`: the periodic backend health check, by hand."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ops.services import backend_check_all


class Command(BaseCommand):
    help = (
        "Check every enabled backend (GET /v1/models, refreshing its models): "
        "a failing backend leaves rotation, a passing one returns, and staff "
        "are e-mailed when one goes down or comes back. Exits non-zero if any "
        "backend failed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        checks = backend_check_all()
        if not checks:
            self.stdout.write("No enabled backends. Add one with addbackend.")
        for check in checks:
            if check.ok:
                line = self.style.SUCCESS(f"{check.backend}: ok")
            else:
                line = self.style.ERROR(
                    f"{check.backend}: failed ({check.failed_checks} in a row, "
                    f"staff are told after {settings.BACKEND_ALERT_AFTER}): "
                    f"{check.error}"
                )
            self.stdout.write(line)
            if check.alert:
                state = "down" if check.alert == "down" else "back"
                self.stdout.write(f"  staff e-mailed: {check.backend} is {state}")
        failed = [check.backend for check in checks if not check.ok]
        if failed:
            raise CommandError(f"Failing: {', '.join(failed)}")
