"""The staff analytics page over 10 million usage records: server time of
`/admin/analytics/` for a 90-day range, per breakdown, from the rollups.

    .venv/bin/python bench/usage_analytics.py --fresh-db          # ~8 minutes
    .venv/bin/python bench/usage_analytics.py --reuse --requests 20
    .venv/bin/python bench/usage_analytics.py --fresh-db --incremental  # ~12

A throwaway PostgreSQL database (BENCH_ANALYTICS_DATABASE_URL, default
`bench_analytics`; `--fresh-db` drops it first) is migrated and filled:
2,000 users (1,500 with a SAML account asserting an affiliation), 20 groups
(two of them the dedicated class), 100 projects (five dedicated), 12 models on
6 backends, then `--records` usage records over `--days` days by one
`INSERT ... SELECT ... FROM generate_series` per million (skewed: a few heavy
users, each user on one to three models and active nearly every day, a
quarter of the requests billed to a project, 40 % chat; 93 % served, 3 % 429,
2 % 503, 1 % 400, 1 % 502; log-normal time to first token, slower on the
larger models).

The usage rollup (usage/rollups.py) then fills its tables both ways it can:
the periodic run (`usage_rollup`, batches of 5,000 as in production) counts
the newest `--uncounted` records, which were written uncounted; the older
ones were written as counted and every day is then recomputed from the raw
records by `usage_rollup_rebuild` (`rollupusage --rebuild`), the same INSERT
... SELECT ... ON CONFLICT statements over whole days, minutes faster than
marking ten million records batch by batch. `--incremental` leaves every
record to the periodic run instead. The rollup tables are then analysed, as
autovacuum would.

Server time is the wall time of Django's test `Client.get()` in this process
(middleware, view, SQL round trips, template; no network or ASGI server), with
production settings (DEBUG off), as bench/institution_search.py measures.
Breakdowns go round-robin; the EXPLAIN ANALYZE plans of the page's two
GROUP BY queries follow.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.institution_search import (  # noqa: E402
    QueryCounter,
    environment,
    percentile,
    say,
    urlsplit_host,
)
from bench.run import database_ensure, load_average, machine  # noqa: E402

TARGET_MS = 1000.0
BREAKDOWNS = ("project", "group", "affiliation", "model", "service_class")
MODELS = 12
BACKENDS = 6
GROUPS = 20
PROJECTS = 100
AFFILIATIONS = ("faculty", "staff", "student", "member", "affiliate")
SCOPED_AFFILIATION = "urn:oid:1.3.6.1.4.1.5923.1.1.1.9"
CHUNK = 1_000_000


def people(users: int) -> None:
    """Users, groups (two dedicated), memberships, projects, social accounts,
    backends: the ORM, a few thousand rows."""
    from allauth.socialaccount.models import SocialAccount
    from django.contrib.auth.models import Group

    from accounts.models import User
    from catalog.models import Backend, GroupLimits
    from projects.models import Project

    User.objects.bulk_create(
        [
            User(username=f"user{n:05d}", email=f"user{n:05d}@uni.example")
            for n in range(users)
        ],
        batch_size=1000,
    )
    user_ids = list(User.objects.order_by("pk").values_list("pk", flat=True))
    groups = Group.objects.bulk_create(
        [Group(name=f"group {n:02d}") for n in range(GROUPS)]
    )
    GroupLimits.objects.bulk_create(
        [GroupLimits(group=group, dedicated_access=True) for group in groups[:2]]
    )
    through = User.groups.through
    through.objects.bulk_create(
        [
            through(user_id=user_id, group_id=groups[(index + 7 * k) % GROUPS].pk)
            for index, user_id in enumerate(user_ids)
            for k in range(index % 3)  # zero to two groups each
        ],
        batch_size=5000,
    )
    Project.objects.bulk_create(
        [
            Project(
                name=f"project {n:03d}",
                pi_id=user_ids[n],
                allocation_tokens=10**9,
                starts_on=date(2020, 1, 1),
                ends_on=date(2030, 1, 1),
                dedicated=n < 5,
            )
            for n in range(PROJECTS)
        ]
    )
    SocialAccount.objects.bulk_create(
        [
            SocialAccount(
                user_id=user_id,
                provider="uni-saml",
                uid=f"u{index}@uni.example",
                extra_data={
                    SCOPED_AFFILIATION: [
                        "member@uni.example",
                        f"{AFFILIATIONS[index % len(AFFILIATIONS)]}@uni.example",
                    ],
                    "urn:oid:0.9.2342.19200300.100.1.3": [f"u{index}@uni.example"],
                },
            )
            for index, user_id in enumerate(user_ids)
            if index % 4  # three in four
        ],
        batch_size=1000,
    )
    Backend.objects.bulk_create(
        [
            Backend(name=f"gpu{n:02d}", base_url=f"http://127.0.0.1:9/v{n}")
            for n in range(BACKENDS)
        ]
    )


# {key} and {browser} are filled in by records(): a key per API request or none.
RECORDS_SQL = """
INSERT INTO usage_usagerecord (
    request_id, user_id, key_id, model, backend_id, endpoint, client, stream,
    status, finish_reason, prompt_tokens, completion_tokens, usage_source,
    weighted_tokens, ttft_ms, duration_ms, retry_count, started_at,
    recorded_at, rollup_batch, project_id, reasoning_tokens)
SELECT
    'bench-' || g, u.id, {key}, 'model-' || lpad(m::text, 2, '0'),
    CASE WHEN s IN (429, 503) THEN NULL ELSE %(backend0)s + m %% %(backends)s END,
    'chat/completions', CASE WHEN browser THEN 'browser' ELSE 'api' END,
    browser OR r_stream < 0.7,
    s, CASE WHEN s = 200 THEN 'stop' WHEN s = 502 THEN 'backend_error'
            ELSE 'rejected' END,
    p, c, 'reported', ((p + c) * (1 + m %% 3)), ttft, coalesce(ttft, 0) + c * 20,
    0, at, at, CASE WHEN g <= %(counted)s THEN 0 END, project, 0
FROM (
    SELECT g, at, u_index, m, browser, r_stream, s,
           CASE WHEN s < 400 THEN 50 + (random() * 2000)::int ELSE 0 END AS p,
           CASE WHEN s < 400 THEN (random() * 800)::int ELSE 0 END AS c,
           CASE WHEN s < 400 THEN least(600000, (exp(
               ln(200 + 60 * m)
               + 0.8 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())
           ))::int) END AS ttft,
           CASE WHEN random() < 0.25 THEN %(project0)s + u_index %% %(projects)s
           END AS project
    FROM (
        SELECT g,
               %(start)s::timestamptz
                   + (g - 1)::float8 / %(records)s * %(span)s::interval AS at,
               u_index,
               (u_index + floor(power(random(), 3) * 3)::int) %% %(models)s AS m,
               random() < 0.4{browser} AS browser,
               random() AS r_stream,
               CASE WHEN r < 0.93 THEN 200 WHEN r < 0.96 THEN 429
                    WHEN r < 0.98 THEN 503 WHEN r < 0.99 THEN 400 ELSE 502
               END AS s
        FROM (
            SELECT g, floor(power(random(), 2) * %(users)s)::int AS u_index,
                   random() AS r
            FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
        ) AS drawn
    ) AS shaped
) AS rows
JOIN (
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS index FROM accounts_user
) AS u ON u.index = rows.u_index
"""


def records(
    total: int, days: int, *, counted: int, models: int = MODELS, key0: int = 0
) -> float:
    """`total` usage records over the `days` days up to today, in time order
    (ids rise with started_at, as the meter writes them), a million per
    statement; the first `counted` marked as already counted (rollup batch
    0), the rest left to the incremental rollup. With `key0` (the first of
    one key per even-numbered user, ids in user order: bench/usage_scale.py)
    those users' API requests carry their key and the others use the chat
    only; without, no record has a key. Seconds taken."""
    from django.db import connection

    from catalog.models import Backend
    from projects.models import Project

    started = time.perf_counter()
    end_day = date.today() + timedelta(days=1)
    params: dict[str, Any] = {
        "start": str(end_day - timedelta(days=days)),
        "span": f"{days} days",
        "records": total,
        "counted": counted,
        "users": _count("accounts_user"),
        "models": models,
        "key0": key0,
        "backends": BACKENDS,
        "backend0": Backend.objects.order_by("pk").values_list("pk", flat=True)[0],
        "projects": PROJECTS,
        "project0": Project.objects.order_by("pk").values_list("pk", flat=True)[0],
    }
    statement = RECORDS_SQL.format(
        key=(
            "CASE WHEN NOT browser THEN %(key0)s + u_index / 2 END" if key0 else "NULL"
        ),
        browser=" OR u_index %% 2 = 1" if key0 else "",
    )
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        for first in range(1, total + 1, CHUNK):
            last = min(total, first + CHUNK - 1)
            cursor.execute(statement, {**params, "first": first, "last": last})
            say(f"  {last:,} records ({time.perf_counter() - started:.0f} s)")
        cursor.execute("VACUUM ANALYZE usage_usagerecord")
    return time.perf_counter() - started


def rollups(days: int, batch_size: int) -> dict[str, Any]:
    """The usage rollup's two paths: the periodic run over the records not yet
    counted, then (unless every record was left to it) the rebuild of every
    day from the raw records, which runs the same INSERT ... SELECT ... ON
    CONFLICT statements over whole days instead of marking records one batch
    at a time. Then VACUUM ANALYZE, as autovacuum would."""
    from django.db import connection

    from usage.rollups import usage_rollup, usage_rollup_rebuild

    started = time.perf_counter()
    incremental = usage_rollup(batch_size=batch_size)
    rolled = time.perf_counter() - started
    say(f"  incremental: {incremental.records:,} records in {rolled:.0f} s")
    rebuilt, rebuild_seconds = None, 0.0
    if _count("usage_usagerecord") > incremental.records:
        started = time.perf_counter()
        today = date.today()
        rebuilt = usage_rollup_rebuild(
            since=today - timedelta(days=days), until=today + timedelta(days=1)
        )
        rebuild_seconds = time.perf_counter() - started
        say(f"  rebuild: {rebuild_seconds:.0f} s")
    with connection.cursor() as cursor:
        for table in (
            "usage_dailyuseranalytics",
            "usage_dailymodelanalytics",
            "usage_dailyusage",
            "usage_hourlyusage",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return {
        "incremental": incremental,
        "incremental_seconds": rolled,
        "rebuilt": rebuilt,
        "rebuild_seconds": rebuild_seconds,
    }


def _count(table: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (a constant)
        return int(cursor.fetchone()[0])


def measure(since: date, until: date, requests: int, warmup: int) -> dict[str, Any]:
    from django.db import connection
    from django.test import Client

    from accounts.models import User

    staff, _ = User.objects.get_or_create(
        username="bench-staff", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(staff)
    counter = QueryCounter()
    times: dict[str, list[float]] = {by: [] for by in BREAKDOWNS}
    counts: dict[str, list[int]] = {by: [] for by in BREAKDOWNS}
    with connection.execute_wrapper(counter):
        for round_index in range(warmup + requests):
            for by in BREAKDOWNS:
                counter.count = 0
                started = time.perf_counter()
                response = client.get(
                    "/admin/analytics/",
                    {"since": str(since), "until": str(until), "by": by},
                    secure=True,
                )
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"{by}: HTTP {response.status_code}")
                if round_index < warmup:
                    continue
                times[by].append(elapsed)
                counts[by].append(counter.count)
    from ops.analytics import analytics_read

    rows = {
        by: len(analytics_read(since=since, until=until, by=by).rows)
        for by in BREAKDOWNS
    }
    return {"times": times, "counts": counts, "rows": rows}


def plans(since: date, until: date) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the page's two GROUP BYs: the per-user
    one the group, affiliation and service class breakdowns read (the
    largest), and the per-model one every view reads."""
    from django.db import connection

    from ops.analytics import summed_columns
    from usage.models import DailyModelAnalytics, DailyUserAnalytics

    queries = {
        "per user and project (service class)": DailyUserAnalytics.objects.filter(
            day__gte=since, day__lte=until
        )
        .values("user_id", "project_id")
        .annotate(**summed_columns())
        .order_by(),
        "per model and backend (every view)": DailyModelAnalytics.objects.filter(
            day__gte=since, day__lte=until
        )
        .values("model", "backend_id")
        .annotate(**summed_columns())
        .order_by(),
    }
    found = {}
    with connection.cursor() as cursor:
        for name, query in queries.items():
            sql, params = query.query.sql_with_params()
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            found[name] = "\n".join(row[0] for row in cursor.fetchall())
    return found


def sizes() -> list[tuple[str, int, str]]:
    from django.db import connection

    found = []
    with connection.cursor() as cursor:
        for table in (
            "usage_usagerecord",
            "usage_hourlyusage",
            "usage_dailyusage",
            "usage_dailyuseranalytics",
            "usage_dailymodelanalytics",
        ):
            cursor.execute(
                f"SELECT count(*), pg_size_pretty(pg_total_relation_size('{table}')) "  # noqa: S608 (constants)
                f"FROM {table}"
            )
            count, size = cursor.fetchone()
            found.append((table, int(count), size))
    return found


def report(outcome: dict[str, Any]) -> str:
    heads = ("p50 ms", "max ms", "mean ms")
    lines = [f"{'breakdown':15} " + " ".join(f"{h:>8}" for h in heads) + "   SQL  rows"]
    for by in BREAKDOWNS:
        values = outcome["times"][by]
        counts = sorted(set(outcome["counts"][by]))
        sql = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        lines.append(
            f"{by:15} {percentile(values, 0.5):8.1f} {max(values):8.1f} "
            f"{statistics.fmean(values):8.1f} {sql:>5} {outcome['rows'][by]:>5}"
        )
    worst = max(max(v) for v in outcome["times"].values())
    verdict = "met" if worst < TARGET_MS else "MISSED"
    lines.append(
        f"target: every request under {TARGET_MS:.0f} ms: {verdict} (max {worst:.1f})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_ANALYTICS_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/bench_analytics",
        ),
    )
    parser.add_argument("--fresh-db", action="store_true", help="drop it first")
    parser.add_argument(
        "--reuse", action="store_true", help="measure the data already there"
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
    )
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=120, help="of generated traffic")
    parser.add_argument("--range-days", type=int, default=90, help="the page's range")
    parser.add_argument(
        "--uncounted",
        type=int,
        default=200_000,
        help="the newest records, left to the incremental rollup",
    )
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="leave every record to the incremental rollup (no rebuild; slower)",
    )
    parser.add_argument(
        "--rollup-batch",
        type=int,
        default=5000,
        help="records per incremental rollup transaction (the job's default)",
    )
    parser.add_argument("--requests", type=int, default=10, help="per breakdown")
    parser.add_argument("--warmup", type=int, default=1, help="per breakdown")
    args = parser.parse_args(argv)

    database_ensure(args.database_url, fresh=args.fresh_db)
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as data_dir:
        environment(args.database_url, args.redis_url, data_dir)
        # The staff account is logged in by the test client, without a second
        # factor: the MFA check is one middleware test, whatever the page.
        os.environ["REQUIRE_STAFF_MFA"] = "false"
        return run(args)


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--no-input", verbosity=0)
    call_command("collectstatic", "--no-input", verbosity=0)
    if not args.reuse:
        say("people, groups, projects, backends")
        people(args.users)
        counted = 0 if args.incremental else args.records - args.uncounted
        say(f"{args.records:,} usage records over {args.days} days")
        generated = records(args.records, args.days, counted=max(counted, 0))
        print(f"{args.records:,} records written in {generated:.0f} s", flush=True)
        say("rollups")
        done = rollups(args.days, args.rollup_batch)
        step, seconds = done["incremental"], done["incremental_seconds"]
        print(
            f"incremental rollup: {step.records:,} records in {step.batches} "
            f"batches of up to {args.rollup_batch:,}, {seconds:.1f} s "
            f"({step.records / max(seconds, 1e-9):,.0f} records/s)",
            flush=True,
        )
        if done["rebuilt"] is not None:
            print(
                f"rebuild of all {args.days + 1} days from the raw records: "
                f"{done['rebuild_seconds']:.0f} s ({done['rebuilt'].buckets})",
                flush=True,
            )
    from django.utils import timezone

    until = timezone.localdate()
    since = until - timedelta(days=args.range_days - 1)
    load_before = load_average()
    outcome = measure(since, until, args.requests, args.warmup)
    print(
        f"{machine()}; PostgreSQL at {urlsplit_host(args.database_url)}; "
        f"range {since} to {until} ({args.range_days} days); {args.requests} "
        f"requests per breakdown after {args.warmup} warm-up, round-robin; load "
        f"average {load_before} -> {load_average()}"
    )
    for table, count, size in sizes():
        print(f"  {table:28} {count:>12,} rows {size:>10}")
    print(report(outcome), flush=True)
    for name, plan in plans(since, until).items():
        print(f"\nEXPLAIN ANALYZE, {name}:\n{plan}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
