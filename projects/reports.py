"""A project's monthly report and its usage CSV: reads assembled for the
printable report page, and the rows of the download (through portal.csvsafe:
project names and model strings are data, never formulas)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from portal.csvsafe import CsvWriter, Writable
from projects.models import AllocationChange, Project
from projects.selectors import (
    PeriodUsage,
    allocation_history,
    period_usage,
    project_terms,
    project_used,
)
from projects.windows import window_at
from usage.periods import local_midnight

CSV_HEADER = ("project", "from", "to", "by", "name")
CSV_FIELDS = ("requests", "errors", "prompt_tokens", "completion_tokens",
              "weighted_tokens")  # fmt: skip


@dataclass
class MonthReport:
    month: date  # its first day
    end_day: date  # the first day of the next month
    allocation: int | None  # for this month; None: none falls in it
    usage: PeriodUsage
    used_to_date: int  # from the period's start through this month
    history: list[AllocationChange]  # the changes made before the month ended

    @property
    def previous(self) -> str:
        return f"{self.month - timedelta(days=1):%Y-%m}"

    @property
    def next(self) -> str:
        return f"{self.end_day:%Y-%m}"


def month_report(
    *, project: Project, month: date, user_id: int | None = None
) -> MonthReport:
    """The calendar month starting `month`: its allocation (the instalment
    with monthly instalments, else the whole grant), its use by member and by
    model (only `user_id`'s when given), use to date and the history."""
    end_day = (month + timedelta(days=32)).replace(day=1)
    in_period = max(month, project.starts_on)
    window = window_at(
        project_terms(project=project), local_midnight(in_period) + timedelta(hours=12)
    )
    history = list(allocation_history(project=project, before=local_midnight(end_day)))
    return MonthReport(
        month=month,
        end_day=end_day,
        allocation=window.limit if window and in_period < end_day else None,
        usage=period_usage(
            project=project,
            first_day=month,
            last_day=end_day - timedelta(days=1),
            user_id=user_id,
        ),
        used_to_date=project_used(
            project_id=project.pk,
            first_day=project.starts_on,
            end_day=min(end_day, project.ends_on + timedelta(days=1)),
            user_id=user_id,
        ),
        history=history,
    )


def project_usage_csv_write(
    *, project: Project, usage: PeriodUsage, out: Writable
) -> None:
    """One row per member, then one per model, over the usage's period."""
    writer = CsvWriter(out)
    writer.writerow((*CSV_HEADER, *CSV_FIELDS))
    first, last = usage.first_day.isoformat(), usage.last_day.isoformat()
    for by, lines in (("member", usage.by_member), ("model", usage.by_model)):
        for line in lines:
            totals = (getattr(line.totals, name) for name in CSV_FIELDS)
            writer.writerow((project.name, first, last, by, line.label, *totals))
