"""Reads for the staff analytics page: usage over any range of days, broken
down by project, group, affiliation, model or service class, with time to
first token and the shares of 429 and 503 answers per model.

Everything comes from the usage rollup's daily analytics tables
(usage.models.DailyUserAnalytics and DailyModelAnalytics), never from the raw
records, so a 90-day range costs the same whatever the traffic: one GROUP BY
over at most one row per user, project and day, and one over a row per model,
backend and day (docs/benchmarks.md, "Staff analytics").

- Project and model: columns of the rollups, exact.
- Group, affiliation and service class: the per-user rows joined at query time
  to what is known of each user *now* (group membership, the affiliation the
  identity provider last asserted, the class those groups and the project
  give). A user in two groups counts in both, so group rows may add up to more
  than the total.
- Affiliation: from the user's sign-in claims (ops/affiliation.py); users
  who signed in without one are "not asserted".
- Service class: dedicated when one of the user's groups holds the dedicated
  class (catalog GroupLimits.dedicated_access) or the request billed a
  dedicated project; shared otherwise.

Time to first token is read from a fixed-bucket histogram (ops/usagefigures.py)
of served, streamed requests, right to within a bucket. It is measured from
the request's arrival, so it includes any wait in the model's queue. Queue
wait on its own is not recorded per request (only in Prometheus,
`portico_queue_wait_seconds`, per process), so it is not shown here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import BigIntegerField, Sum
from django.db.models.functions import Cast

from catalog.models import Backend, GroupLimits
from ops.affiliation import affiliations
from ops.usagefigures import SUMMED, Figures, Row
from projects.models import Project
from usage.models import DailyModelAnalytics, DailyUserAnalytics, RollupState
from usage.rollups import STATE_NAME

BREAKDOWNS = {
    "project": "Project",
    "group": "Group",
    "affiliation": "Affiliation",
    "model": "Model",
    "service_class": "Service class",
}
NO_PROJECT = "(own budget, no project)"
NO_GROUP = "(in no group)"
NOT_ASSERTED = "(not asserted)"
DEDICATED, SHARED = "dedicated", "shared"


@dataclass
class Analytics:
    since: date
    until: date
    by: str
    total: Figures
    rows: list[Row]
    models: list[Row]
    rolled_through: datetime | None
    first_day: date | None


def summed_columns() -> dict[str, Any]:
    # Sums of the bigint columns come back as numeric: cast to bigint (no
    # range's tokens come near 2**63), so they arrive as ints.
    return {
        name: Cast(Sum(name), BigIntegerField())
        if name in ("prompt_tokens", "completion_tokens", "weighted_tokens")
        else Sum(name)
        for name in SUMMED
    }


def _grouped_by(
    table: type[DailyUserAnalytics] | type[DailyModelAnalytics],
    keys: Sequence[str],
    since: date,
    until: date,
) -> list[tuple[tuple[Any, ...], list[int]]]:
    """One GROUP BY `keys` over the days [since, until] (inclusive), as
    (key values, sums in SUMMED order). Fetched through the cursor: up to a
    few thousand rows of 35 columns, where the ORM's per-value converters
    would cost more than the query's own aggregation (docs/benchmarks.md)."""
    query = (
        table.objects.filter(day__gte=since, day__lte=until)
        .values(*keys)
        .annotate(**summed_columns())
        .order_by()
    )
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = tuple(column[0] for column in cursor.description)
        if names != (*keys, *SUMMED):
            raise AssertionError(f"unexpected columns {names}")
        width = len(keys)
        return [
            (row[:width], [value or 0 for value in row[width:]])
            for row in cursor.fetchall()
        ]


def _summed(
    found: Iterable[tuple[tuple[Any, ...], list[int]]], labels_of: Any
) -> list[Row]:
    """Add up rows per label; `labels_of(key)` gives a row's labels (several:
    the row counts in each)."""
    totals: dict[Any, list[int]] = {}
    for key, sums in found:
        for label in labels_of(key):
            have = totals.get(label)
            totals[label] = (
                sums
                if have is None
                else [a + b for a, b in zip(have, sums, strict=True)]
            )
    return [Row(label, str(label), Figures.of(sums)) for label, sums in totals.items()]


def analytics_models(*, since: date, until: date) -> list[Row]:
    """Per model (and under it per backend; backend 0: refused before one was
    chosen), over the days [since, until] inclusive: one GROUP BY over the
    per-model rollup."""
    found = _grouped_by(DailyModelAnalytics, ("model", "backend_id"), since, until)
    names = dict(Backend.objects.values_list("pk", "name"))
    models: dict[str, Row] = {}
    for (model_id, backend_id), sums in found:
        figures = Figures.of(sums)
        model = models.setdefault(model_id, Row(model_id, model_id))
        model.figures.merge(figures)
        label = (
            names.get(backend_id, f"backend {backend_id} (deleted)")
            if backend_id
            else "(no backend: refused first)"
        )
        model.children.append(Row(backend_id, label, figures))
    rows = sorted(models.values(), key=lambda row: (-row.figures.requests, row.label))
    for row in rows:
        row.children.sort(key=lambda child: (-child.figures.requests, child.label))
    return rows


def by_project(since: date, until: date) -> list[Row]:
    found = _grouped_by(DailyUserAnalytics, ("project_id",), since, until)
    names = dict(
        Project.objects.filter(pk__in=[key[0] for key, _ in found]).values_list(
            "pk", "name"
        )
    )
    rows = []
    for (project_id,), sums in found:
        label = (
            names.get(project_id, f"project {project_id} (deleted)")
            if project_id
            else NO_PROJECT
        )
        rows.append(Row(project_id, label, Figures.of(sums)))
    return rows


def _memberships(user_ids: Iterable[int]) -> dict[int, list[int]]:
    through = get_user_model().groups.through
    groups: dict[int, list[int]] = defaultdict(list)
    for user_id, group_id in through.objects.filter(
        user_id__in=list(user_ids)
    ).values_list("user_id", "group_id"):
        groups[user_id].append(group_id)
    return groups


def by_group(since: date, until: date) -> list[Row]:
    found = _grouped_by(DailyUserAnalytics, ("user_id",), since, until)
    groups = _memberships(key[0] for key, _ in found)
    names = dict(Group.objects.values_list("pk", "name"))
    return _summed(
        found,
        lambda key: (
            [names[g] for g in groups.get(key[0], ()) if g in names] or [NO_GROUP]
        ),
    )


def by_affiliation(since: date, until: date) -> list[Row]:
    found = _grouped_by(DailyUserAnalytics, ("user_id",), since, until)
    known = affiliations(key[0] for key, _ in found)
    return _summed(found, lambda key: [known.get(key[0], NOT_ASSERTED)])


def by_service_class(since: date, until: date) -> list[Row]:
    found = _grouped_by(DailyUserAnalytics, ("user_id", "project_id"), since, until)
    dedicated_groups = set(
        GroupLimits.objects.filter(dedicated_access=True).values_list(
            "group_id", flat=True
        )
    )
    dedicated_projects = set(
        Project.objects.filter(dedicated=True).values_list("pk", flat=True)
    )
    groups = _memberships({key[0] for key, _ in found})

    def labels(key: tuple[Any, ...]) -> list[str]:
        user_id, project_id = key
        dedicated = project_id in dedicated_projects or not dedicated_groups.isdisjoint(
            groups.get(user_id, ())
        )
        return [DEDICATED if dedicated else SHARED]

    return _summed(found, labels)


def by_model(since: date, until: date) -> list[Row]:
    rows = analytics_models(since=since, until=until)
    return [Row(row.key, row.label, row.figures) for row in rows]


BREAKDOWN_READS = {
    "project": by_project,
    "group": by_group,
    "affiliation": by_affiliation,
    "model": by_model,
    "service_class": by_service_class,
}


def analytics_read(*, since: date, until: date, by: str) -> Analytics:
    """The page's figures for the days [since, until] (inclusive, local)."""
    if by not in BREAKDOWN_READS:
        raise ValueError(f"unknown breakdown {by!r}")
    models = analytics_models(since=since, until=until)
    total = Figures()
    for row in models:
        total.merge(row.figures)
    rows = (
        [Row(row.key, row.label, row.figures) for row in models]
        if by == "model"
        else BREAKDOWN_READS[by](since, until)
    )
    rows.sort(
        key=lambda row: (-row.figures.weighted_tokens, -row.figures.requests, row.label)
    )
    state = RollupState.objects.filter(name=STATE_NAME).first()
    first = (
        DailyModelAnalytics.objects.order_by("day")
        .values_list("day", flat=True)
        .first()
    )
    return Analytics(
        since=since,
        until=until,
        by=by,
        total=total,
        rows=rows,
        models=models,
        rolled_through=state.rolled_through if state else None,
        first_day=first,
    )
