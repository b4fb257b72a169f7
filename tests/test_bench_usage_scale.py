"""The usage-at-scale benchmark (bench/usage_scale.py) on a few thousand
records against the test database, so that it cannot rot. It asserts that
every phase ran and what it counted, never a timing (those belong in
docs/benchmarks.md)."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings

from tests.benchrun import bench_run, run_database_url, services_required


def test_the_usage_scale_bench_times_every_job_and_page(
    transactional_db: None, tmp_path: Path
) -> None:
    services_required(redis=False)
    figures = tmp_path / "scale.json"
    finished = bench_run(
        "usage_scale.py",
        "--database-url",
        run_database_url(),
        "--redis-url",
        settings.REDIS_URL or "",
        "--records",
        "3000",
        "--days",
        "6",
        "--users",
        "100",
        "--models",
        "4",
        "--uncounted",
        "200",
        "--busy-hour",
        "150",
        "--requests",
        "1",
        "--json",
        str(figures),
    )
    phases = {phase["name"]: phase for phase in json.loads(figures.read_text())}
    names = list(phases)
    assert names[0] == "hourly rollup, 150 records"
    assert any(name.startswith("`rollupusage --rebuild` of") for name in names)
    for page in ("default (30 days)", "90 days", "365 days"):
        assert phases[f"Settings > Usage, {page}"]["target_ms"] == 200
    for by in ("user", "group", "model"):
        assert phases[f"admin usage report, 90 days, {by}"]["target_ms"] == 1000
    assert (
        names[-1].startswith("pruning of")
        and "rolled back" in phases[names[-1]]["note"]
    )
    for phase in phases.values():
        assert phase["ms"] and all(count > 0 for count in phase["queries"]), phase
    assert "EXPLAIN (ANALYZE, BUFFERS)" in finished.stdout
    from usage.models import UsageRecord

    assert UsageRecord.objects.count() == 3000, "pruning was rolled back"
