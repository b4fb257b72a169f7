"""The model-switch benchmark (bench/model_switch.py) in its smoke mode, so that
it cannot rot. It asserts that both routings ran and were measured, never a
timing (those belong in docs/benchmarks.md)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchrun import bench_run, service_args, services_required


def test_the_model_switch_bench_measures_both_routings(
    transactional_db: None, tmp_path: Path
) -> None:
    services_required()
    report = tmp_path / "switch.json"
    finished = bench_run(
        "model_switch.py",
        "--smoke",
        *service_args(),
        "--json",
        str(report),
        "--log-dir",
        str(tmp_path),
        timeout=180,
    )
    runs = json.loads(report.read_text())["runs"]
    assert [run["prefer_loaded"] for run in runs] == [True, False]
    for run in runs:
        assert run["completed"] > 0 and run["errors"] == 0, run
        assert run["ttft_p50_ms"] > 0 and len(run["loads"]) == 2
    assert "prefer loaded" in finished.stdout and "TTFT p95" in finished.stdout
