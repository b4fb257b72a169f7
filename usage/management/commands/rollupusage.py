"""`manage.py rollupusage`: the periodic rollup (and quota reconciliation), by
hand; `--rebuild --since DATE --until DATE` recomputes whole days from raw."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from usage.rollups import usage_rollup, usage_rollup_rebuild
from usage.services import quota_counters_reconcile


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = (
        "Fold usage records not yet counted into the hourly and daily totals and "
        "refresh the quota counters. Safe to run at any time, repeatedly."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="Recompute the days from --since to --until (exclusive) from "
            "raw records instead (they must not have been pruned).",
        )
        parser.add_argument("--since", type=_day, help="first day, YYYY-MM-DD")
        parser.add_argument("--until", type=_day, help="day after the last one")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["rebuild"]:
            if not (options["since"] and options["until"]):
                raise CommandError("--rebuild needs --since and --until")
            try:
                result = usage_rollup_rebuild(
                    since=options["since"], until=options["until"]
                )
            except ValueError as error:
                raise CommandError(str(error)) from None
            self.stdout.write(
                f"Rebuilt {result.buckets['daily']} daily and "
                f"{result.buckets['hourly']} hourly totals "
                f"({result.records} new records counted first)."
            )
        else:
            if options["since"] or options["until"]:
                raise CommandError("--since and --until go with --rebuild")
            result = usage_rollup()
            self.stdout.write(
                f"Rolled up {result.records} records in {result.batches} batches."
            )
        checked = quota_counters_reconcile()
        self.stdout.write(f"Checked {checked} quota counters.")
