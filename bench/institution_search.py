""" "Choose your institution" with a whole federation imported: server time of
the search endpoint and of the login page, with 5,000 IdPs.

    .venv/bin/python bench/institution_search.py --fresh-db
    .venv/bin/python bench/institution_search.py --idps 5000 --requests 200

A throwaway PostgreSQL database (BENCH_SSO_DATABASE_URL, default `bench_sso`;
`--fresh-db` drops it first) is migrated and filled by `importidps` from a
generated, signed aggregate (sso.devidp.aggregate). Then, in this process,
Django's test Client sends `GET /accounts/institutions/search/?q=...` for a
mix of queries and `GET /accounts/login/`, round-robin, with production
settings (DEBUG off, Redis cache when BENCH_REDIS_URL answers).

Server time is the wall time of `client.get(...)`: the whole middleware
stack, the view, its SQL round trips and the template, in one process with no
network and no ASGI server in front (those add the same ~1 ms to every
request; bench/run.py measures them). SQL queries are counted per request
with a connection execute wrapper (no DEBUG query log needed).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import database_ensure, load_average, machine  # noqa: E402

FEDERATION = "bench"
TARGET_MS = 100.0


def queries(idps: int) -> dict[str, str]:
    """Query kind -> URL. Names are "University N of Example", scopes
    uniN.example.org (sso.devidp.aggregate)."""
    n = idps * 7 // 10  # some IdP in the upper part of the file
    search = "/accounts/institutions/search/?q="
    return {
        "full name": f"{search}University+{n}+of+Example",
        'prefix "univ"': f"{search}univ",
        "word in the middle": f"{search}of",
        "number in the middle": f"{search}{n}",
        "e-mail address": f"{search}someone%40uni{n}.example.org",
        "e-mail, subdomain": f"{search}someone%40cs.uni{n}.example.org",
        "miss": f"{search}no+such+college",
        "login page": "/accounts/login/",
    }


def environment(database_url: str, redis_url: str, data_dir: str) -> None:
    """Production settings, before Django is set up. DATA_DIR: a temporary
    one, for collectstatic's manifest (the login page's {% static %})."""
    for name in ("DEBUG", "DATABASE_URL", "REDIS_URL", "SITE_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="testserver",
        LOG_LEVEL="warning",
        DATA_DIR=data_dir,
    )
    if redis_url and _redis_answers(redis_url):
        os.environ["REDIS_URL"] = redis_url
    else:
        say(f"Redis at {redis_url!r} does not answer: in-process cache instead")


def _redis_answers(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except Exception:  # any failure: no Redis
        return False


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def federation_load(idps: int) -> str:
    """Generate a signed aggregate of `idps` IdPs and import it; the
    command's summary line."""
    import io

    from django.core.management import call_command

    from sso.devidp.aggregate import aggregate_build, test_signing_pair

    key_pem, cert_pem = test_signing_pair()
    started = time.perf_counter()
    data = aggregate_build(
        idps=idps, signing_key_pem=key_pem, signing_cert_pem=cert_pem
    )
    built = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-sso-") as tmp:
        (Path(tmp) / "agg.xml").write_bytes(data)
        (Path(tmp) / "agg.crt").write_bytes(cert_pem)
        out = io.StringIO()
        call_command(
            "importidps",
            str(Path(tmp) / "agg.xml"),
            "--federation",
            FEDERATION,
            "--cert",
            str(Path(tmp) / "agg.crt"),
            stdout=out,
        )
    imported = time.perf_counter()
    say(
        f"aggregate: {len(data) / 1e6:.1f} MB built in {built - started:.1f} s, "
        f"imported in {imported - built:.1f} s"
    )
    return out.getvalue().strip()


class QueryCounter:
    """Counts the SQL statements run through the default connection."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any
    ) -> Any:
        self.count += 1
        return execute(sql, params, many, ctx)


def measure(urls: dict[str, str], requests: int, warmup: int) -> dict[str, Any]:
    """Round-robin over the URLs, so every kind sees the same conditions;
    per kind the times (ms) and the SQL statement counts."""
    from django.db import connection
    from django.test import Client

    client = Client()
    counter = QueryCounter()
    times: dict[str, list[float]] = {kind: [] for kind in urls}
    counts: dict[str, list[int]] = {kind: [] for kind in urls}
    sizes: dict[str, int] = {}
    with connection.execute_wrapper(counter):
        for round_index in range(warmup + requests):
            for kind, url in urls.items():
                counter.count = 0
                started = time.perf_counter()
                response = client.get(url, secure=True)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"{url}: HTTP {response.status_code}")
                if round_index < warmup:
                    continue
                times[kind].append(elapsed)
                counts[kind].append(counter.count)
                sizes[kind] = _results(response)
    return {"times": times, "counts": counts, "results": sizes}


def _results(response: Any) -> int:
    if response.get("Content-Type", "").startswith("application/json"):
        return len(response.json()["results"])
    return -1


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def table(outcome: dict[str, Any], urls: dict[str, str]) -> str:
    lines = [
        f"{'request':22} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
        f"{'mean ms':>8} {'SQL':>5} {'results':>7}  URL"
    ]
    for kind, url in urls.items():
        values = outcome["times"][kind]
        counts = sorted(set(outcome["counts"][kind]))
        sql = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        found = outcome["results"][kind]
        lines.append(
            f"{kind:22} {percentile(values, 0.5):8.2f} "
            f"{percentile(values, 0.95):8.2f} {max(values):8.2f} "
            f"{statistics.fmean(values):8.2f} {sql:>5} "
            f"{found if found >= 0 else '-':>7}  {url}"
        )
    worst = max(percentile(v, 0.95) for v in outcome["times"].values())
    verdict = "met" if worst < TARGET_MS else "MISSED"
    lines.append(f"target: p95 under {TARGET_MS:.0f} ms: {verdict} (worst {worst:.2f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_SSO_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_sso"
        ),
    )
    parser.add_argument(
        "--fresh-db", action="store_true", help="drop and recreate the database first"
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
        help="cache as in production ('' for the in-process cache)",
    )
    parser.add_argument("--idps", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=200, help="per kind")
    parser.add_argument("--warmup", type=int, default=10, help="per kind, not counted")
    args = parser.parse_args(argv)

    database_ensure(args.database_url, fresh=args.fresh_db)
    with tempfile.TemporaryDirectory(prefix="bench-sso-data-") as data_dir:
        environment(args.database_url, args.redis_url, data_dir)
        return run(args)


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--no-input", verbosity=0)
    call_command("collectstatic", "--no-input", verbosity=0)
    load_before = load_average()
    print(federation_load(args.idps), flush=True)
    from sso.models import Institution

    enabled = Institution.objects.filter(enabled=True).count()
    urls = queries(args.idps)
    outcome = measure(urls, args.requests, args.warmup)
    from django.conf import settings

    print(
        f"{machine()}; PostgreSQL at {urlsplit_host(args.database_url)}, "
        f"cache {'Redis' if settings.REDIS_URL else 'in-process'}; "
        f"{enabled} enabled institutions; {args.requests} requests per kind "
        f"after {args.warmup} warm-up, round-robin; load average "
        f"{load_before} -> {load_average()}"
    )
    print(table(outcome, urls), flush=True)
    return 0


def urlsplit_host(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


if __name__ == "__main__":
    sys.exit(main())
