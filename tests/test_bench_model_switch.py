"""The model-switch benchmark (bench/model_switch.py) in its smoke mode, so that
it cannot rot. It asserts that both routings ran and were measured, never a
timing (those belong in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.test_bench_smoke import ROOT, _database_url


def test_the_model_switch_bench_measures_both_routings(
    transactional_db: None, tmp_path: Path
) -> None:
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("the benchmark runs against PostgreSQL (make test sets it)")
    if not settings.REDIS_URL:
        pytest.skip("the benchmark runs with Redis (make test sets it)")
    report = tmp_path / "switch.json"
    finished = subprocess.run(
        [
            sys.executable,
            "bench/model_switch.py",
            "--smoke",
            "--database-url",
            _database_url(),
            "--redis-url",
            settings.REDIS_URL,
            "--json",
            str(report),
            "--log-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    runs = json.loads(report.read_text())["runs"]
    assert [run["prefer_loaded"] for run in runs] == [True, False]
    for run in runs:
        assert run["completed"] > 0 and run["errors"] == 0, run
        assert run["ttft_p50_ms"] > 0 and len(run["loads"]) == 2
    assert "prefer loaded" in finished.stdout and "TTFT p95" in finished.stdout
