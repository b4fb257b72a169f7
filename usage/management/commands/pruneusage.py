"""`manage.py pruneusage`: the periodic retention job, by hand."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from usage.services import usage_records_prune


class Command(BaseCommand):
    help = (
        "Delete raw usage records older than USAGE_RETENTION_DAYS that are "
        "already rolled up (hourly and daily totals are kept)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = usage_records_prune()
        self.stdout.write(
            f"Deleted {result.deleted} usage records that started before "
            f"{result.cutoff:%Y-%m-%d %H:%M %Z} "
            f"(USAGE_RETENTION_DAYS={settings.USAGE_RETENTION_DAYS})."
        )
        if result.kept_unrolled:
            self.stdout.write(
                f"{result.kept_unrolled} older records are kept until a rollup "
                "counts them (run rollupusage)."
            )
