"""Running a bench script from a test, the same way for every bench: in a
subprocess from the repository root, against this test run's PostgreSQL
database and Redis (or neither), its output kept for the assertion message.
Benches are checked for running and for producing numbers, never timings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def run_database_url() -> str:
    """The URL of this test run's database, for a bench's child processes."""
    database = settings.DATABASES["default"]
    credentials = quote(database.get("USER") or "postgres")
    if database.get("PASSWORD"):
        credentials += ":" + quote(database["PASSWORD"])
    host = database.get("HOST") or "127.0.0.1"
    port = database.get("PORT") or 5432
    return f"postgres://{credentials}@{host}:{port}/{database['NAME']}"


def services_required(*, redis: bool = True) -> None:
    """Skip unless the test run has what the benches measure against."""
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("the benchmark runs against PostgreSQL (make test sets it)")
    if redis and not settings.REDIS_URL:
        pytest.skip("the benchmark runs with Redis (make test sets it)")


def bench_run(
    script: str,
    *args: str,
    timeout: int = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run bench/`script` with `args`; fail the test with its stderr's tail
    when it does not exit 0."""
    finished = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished


def service_args() -> list[str]:
    """--database-url and --redis-url of this test run."""
    return ["--database-url", run_database_url(), "--redis-url", settings.REDIS_URL]
