"""A year of usage at scale: 10 million records over 2,000 users, the usage
jobs and pages timed over them (issue #17).

    .venv/bin/python bench/usage_scale.py --fresh-db --generate-only  # ~12 min
    .venv/bin/python bench/usage_scale.py --reuse

A throwaway PostgreSQL database (BENCH_SCALE_DATABASE_URL, default
`bench_scale`; `--fresh-db` drops it first) is migrated and filled by
bench/usage_analytics.py's generator: `--users` users, one API key for every
second user (50 keys per hundred users; their API requests carry it, the
others use the chat only), `--models` models, `--records` records over
`--days` days, the newest `--uncounted` left to the periodic rollup and the
rest rebuilt day by day.

Then, timed (wall time in this process, and the SQL statements' own time):
the periodic rollup of a busy hour (the newest `--busy-hour` records marked
uncounted again, then their days rebuilt so the totals stay right), a
rebuild of one day (also as `rollupusage --rebuild`), Settings > Usage for
the heaviest user (30, 90, 365 days; target 200 ms) and the admin usage
report for 90 days (by user, group, model; target 1 s) through Django's test
client, and the pruning of the oldest day in a transaction rolled back. Each
phase's two slowest statements are then run again under EXPLAIN (ANALYZE,
BUFFERS), rolled back. docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import usage_analytics  # noqa: E402
from bench.institution_search import environment, percentile, say  # noqa: E402
from bench.run import database_ensure, load_average, machine  # noqa: E402

PAGE_TARGET_MS = 200.0  # Settings > Usage, server time
REPORT_TARGET_MS = 1000.0  # the admin usage report, 90 days


def keys() -> int:
    """One API key for every second user, in user order (the generator finds
    a user's key by its position); the first key's id."""
    from accounts.models import ApiKey, User

    user_ids = list(User.objects.order_by("pk").values_list("pk", flat=True))
    made = ApiKey.objects.bulk_create(
        [
            ApiKey(
                user_id=user_id,
                name="bench",
                lookup_id=f"bench{index:08d}",
                digest="0" * 64,
                prefix=f"sk-bench{index:08d}",
                last4="0000",
            )
            for index, user_id in enumerate(user_ids)
            if index % 2 == 0
        ],
        batch_size=1000,
    )
    first = made[0].pk
    assert [key.pk for key in made] == list(range(first, first + len(made)))
    return first


def generate(args: argparse.Namespace) -> None:
    say("people, groups, projects, backends, keys")
    usage_analytics.people(args.users)
    key0 = keys()
    counted = max(args.records - args.uncounted, 0)
    say(f"{args.records:,} usage records over {args.days} days")
    seconds = usage_analytics.records(
        args.records, args.days, counted=counted, models=args.models, key0=key0
    )
    print(f"{args.records:,} records written in {seconds:.0f} s", flush=True)
    say("rollups")
    done = usage_analytics.rollups(args.days, 5000)
    print(
        f"incremental rollup: {done['incremental'].records:,} records in "
        f"{done['incremental_seconds']:.1f} s; rebuild of every day: "
        f"{done['rebuild_seconds']:.0f} s",
        flush=True,
    )


@dataclass
class Statement:
    sql: str
    params: Any
    ms: float


@dataclass
class Phase:
    name: str
    ms: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    target_ms: float | None = None
    note: str = ""


# Each phase's two slowest statements, for EXPLAIN after the phase.
phase_slowest: dict[str, list[Statement]] = {}


class Recorder:
    """Every SQL statement through the default connection, with its time."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, ctx)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            self.statements.append(Statement(sql, params, elapsed))


@contextmanager
def recorded(phase: Phase) -> Iterator[Recorder]:
    """Time the block, count its statements, and keep the slowest for EXPLAIN."""
    from django.db import connection

    recorder = Recorder()
    started = time.perf_counter()
    with connection.execute_wrapper(recorder):
        yield recorder
    phase.ms.append((time.perf_counter() - started) * 1000)
    phase.queries.append(len(recorder.statements))
    phase.sql_ms.append(sum(statement.ms for statement in recorder.statements))
    phase_slowest[phase.name] = sorted(recorder.statements, key=lambda s: -s.ms)[:2]


def explain(statement: Statement) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a statement, in a transaction rolled back
    (ANALYZE runs it: an INSERT, UPDATE or DELETE must leave no trace)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.params)
        plan = "\n".join(_short(row[0]) for row in cursor.fetchall())
        transaction.set_rollback(True)
    return plan


def _short(line: str, width: int = 200) -> str:
    """A plan line cut short (a pruning batch's 10,000 ids)."""
    return line if len(line) <= width else line[: width - 5] + " ..."


def _local_day_of(at: datetime) -> date:
    from django.utils import timezone

    return timezone.localtime(at).date()


def busy_hour(size: int) -> Phase:
    """The periodic rollup over `size` uncounted records: the newest are
    marked uncounted again (so they are counted twice), counted by
    `usage_rollup()`, and their days then rebuilt from the raw records so the
    totals are right again."""
    from django.db import connection

    from usage.models import UsageRecord
    from usage.rollups import usage_rollup, usage_rollup_rebuild

    phase = Phase(f"hourly rollup, {size:,} records")
    newest = UsageRecord.objects.order_by("-id").values_list("id", flat=True)
    first = newest[size - 1 : size].get()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE usage_usagerecord SET rollup_batch = NULL WHERE id >= %s", [first]
        )
    oldest_at = UsageRecord.objects.get(pk=first).started_at
    with recorded(phase):
        result = usage_rollup()
    assert result.records == size, result
    phase.note = f"{result.batches} batch(es), {result.buckets} buckets"
    since = _local_day_of(oldest_at)
    latest = UsageRecord.objects.order_by("-id").values_list("started_at", flat=True)
    until = _local_day_of(latest[0]) + timedelta(days=1)
    usage_rollup_rebuild(since=since, until=until)  # the double count undone
    return phase


def rebuild_day(day: date) -> tuple[Phase, Phase]:
    """`manage.py rollupusage --rebuild` of one whole day (the command also
    refreshes the quota counters: timed apart)."""
    from io import StringIO

    from django.core.management import call_command

    from usage.rollups import usage_rollup_rebuild

    phase = Phase(f"rebuild of {day}")
    with recorded(phase):
        usage_rollup_rebuild(since=day, until=day + timedelta(days=1))
    command = Phase(f"`rollupusage --rebuild` of {day}")
    out = StringIO()
    with recorded(command):
        call_command(
            "rollupusage",
            "--rebuild",
            "--since",
            str(day),
            "--until",
            str(day + timedelta(days=1)),
            stdout=out,
        )
    command.note = out.getvalue().strip().replace("\n", " ")
    return phase, command


def pages(
    name: str,
    path: str,
    queries: dict[str, dict[str, str]],
    user: Any,
    requests: int,
    target_ms: float,
) -> list[Phase]:
    """Server time of GET `path` with each query, round-robin: Django's test
    client in this process (no network, no ASGI server)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    phases = {
        label: Phase(f"{name}, {label}", target_ms=target_ms) for label in queries
    }
    for round_index in range(1 + requests):
        for label, query in queries.items():
            phase = phases[label]
            with recorded(phase):
                response = client.get(path, query, secure=True)
            if response.status_code != 200:
                raise SystemExit(f"{path} {query}: HTTP {response.status_code}")
            if round_index == 0:  # the warm-up
                phase.ms.pop()
                phase.queries.pop()
                phase.sql_ms.pop()
    return list(phases.values())


def prune_day() -> Phase:
    """Retention pruning of the oldest day (`usage_records_prune`, what
    `manage.py pruneusage` runs), in a transaction rolled back so the data
    stays for the next run."""
    from django.conf import settings
    from django.db import transaction

    from usage.models import UsageRecord
    from usage.periods import local_midnight
    from usage.services import usage_records_prune

    oldest = _local_day_of(UsageRecord.objects.order_by("id")[0].started_at)
    now = local_midnight(
        oldest + timedelta(days=1 + settings.USAGE_RETENTION_DAYS)
    ) + timedelta(hours=1)
    phase = Phase(f"pruning of {oldest}")
    with transaction.atomic():
        with recorded(phase):
            result = usage_records_prune(now=now)
        transaction.set_rollback(True)
    phase.note = f"{result.deleted:,} records deleted (rolled back)"
    return phase


def heaviest_user() -> Any:
    from django.db.models import Sum

    from accounts.models import User
    from usage.models import DailyUsage

    top = (
        DailyUsage.objects.values("user_id")
        .annotate(requests=Sum("requests"))
        .order_by("-requests")
        .first()
    )
    return User.objects.get(pk=top["user_id"]), top["requests"]


def measure(args: argparse.Namespace) -> list[Phase]:
    from django.utils import timezone

    from accounts.models import User

    phases = [busy_hour(args.busy_hour)]
    today = timezone.localdate()
    phases.extend(rebuild_day(today - timedelta(days=min(30, args.days // 2))))
    user, requests = heaviest_user()
    say(f"heaviest user: {user.username}, {requests:,} requests")
    ranges = {
        label: {"from": str(today - timedelta(days=days - 1)), "to": str(today)}
        for label, days in (("90 days", 90), ("365 days", 365))
    }
    phases.extend(
        pages(
            "Settings > Usage",
            "/settings/usage/",
            {"default (30 days)": {}, **ranges},
            user,
            args.requests,
            PAGE_TARGET_MS,
        )
    )
    staff, _ = User.objects.get_or_create(
        username="bench-staff", defaults={"is_staff": True, "is_superuser": True}
    )
    since = str(today - timedelta(days=89))
    phases.extend(
        pages(
            "admin usage report, 90 days",
            "/admin/usage/usagereport/",
            {
                by: {"since": since, "until": str(today), "by": by}
                for by in ("user", "group", "model")
            },
            staff,
            args.requests,
            REPORT_TARGET_MS,
        )
    )
    phases.append(prune_day())
    return phases


def report(phases: list[Phase]) -> str:
    lines = [
        "| what | SQL | SQL p50 ms | p50 ms | max ms | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    for phase in phases:
        counts = sorted(set(phase.queries))
        sql = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        worst = max(phase.ms)
        target, verdict = "-", ""
        if phase.target_ms is not None:
            target = f"{phase.target_ms:.0f} ms"
            verdict = "met" if worst <= phase.target_ms else "MISSED"
        lines.append(
            f"| {phase.name} | {sql} | {percentile(phase.sql_ms, 0.5):.1f} | "
            f"{percentile(phase.ms, 0.5):.1f} | "
            f"{worst:.1f} | {target} | {verdict} |"
        )
    for phase in phases:
        if phase.note:
            lines.append(f"{phase.name}: {phase.note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_SCALE_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/bench_scale",
        ),
    )
    parser.add_argument("--fresh-db", action="store_true", help="drop it first")
    parser.add_argument(
        "--reuse", action="store_true", help="measure the data already there"
    )
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
    )
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--uncounted", type=int, default=10_000)
    parser.add_argument(
        "--busy-hour", type=int, default=5000, help="records the hourly run counts"
    )
    parser.add_argument("--requests", type=int, default=10, help="per page")
    parser.add_argument("--no-plans", action="store_true")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)

    database_ensure(args.database_url, fresh=args.fresh_db)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as data_dir:
        environment(args.database_url, args.redis_url, data_dir)
        os.environ["REQUIRE_STAFF_MFA"] = "false"
        return run(args)


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--no-input", verbosity=0)
    call_command("collectstatic", "--no-input", verbosity=0)
    if not args.reuse:
        started = time.perf_counter()
        generate(args)
        print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)
    if args.generate_only:
        return 0
    load_before = load_average()
    phases = measure(args)
    print(
        f"{machine()}; {args.requests} requests per page after one warm-up; "
        f"load average {load_before} -> {load_average()}"
    )
    for table, count, size in usage_analytics.sizes():
        print(f"  {table:28} {count:>12,} rows {size:>10}")
    print(report(phases), flush=True)
    if args.json:
        args.json.write_text(json.dumps([asdict(phase) for phase in phases]))
    if not args.no_plans:
        for name, statements in phase_slowest.items():
            for statement in statements:
                print(f"\nEXPLAIN (ANALYZE, BUFFERS), {name} ({statement.ms:.1f} ms):")
                print(explain(statement))
    return 0


if __name__ == "__main__":
    sys.exit(main())
