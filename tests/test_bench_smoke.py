"""The proxy benchmark (bench/) in its smoke mode: a few requests per scenario,
so that the harness cannot rot. It proves that every part ran and produced
numbers; it never asserts a timing (those belong in docs/benchmarks.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.benchrun import bench_run, run_database_url, service_args, services_required


@pytest.fixture
def bench_outcome(transactional_db: None, tmp_path: Path) -> dict[str, Any]:
    services_required()
    report = tmp_path / "bench.json"
    # The bench's Portico processes use this test database (already migrated;
    # transactional_db empties it afterwards) and this test Redis database.
    finished = bench_run(
        "run.py",
        "--smoke",
        *service_args(),
        "--json",
        str(report),
        "--log-dir",
        str(tmp_path),
        timeout=180,
    )
    outcome = json.loads(report.read_text())
    outcome["printed"] = finished.stdout
    return outcome


def test_the_bench_measures_every_scenario_and_prints_the_tables(
    bench_outcome: dict[str, Any],
) -> None:
    """One test: the harness takes some seconds to run (four processes)."""
    summaries = bench_outcome["summaries"]
    assert set(summaries) == {
        "stream_slow",
        "stream_slow_512",
        "stream_fast",
        "json",
        "latency",
        "latency_stream",
    }
    for scenario, targets in summaries.items():
        assert {"direct", "uvicorn"} <= set(targets), scenario
        for target, summary in targets.items():
            assert summary["completed"] > 0, (scenario, target)
            assert summary["errors"] == 0, (scenario, target)
            assert summary["throughput"] > 0, (scenario, target)
            if scenario.startswith(("stream", "latency_stream")):
                assert summary["tokens_mean"] == 64, (scenario, target)
            if target != "direct":
                assert summary["cpu_ms_per_request"] is not None, (scenario, target)
                assert summary["rss_peak_mb"] > 0, (scenario, target)
    # Metering on vs off: paired runs of the no-delay streams.
    [(on, off)] = bench_outcome["metering"]
    assert (on["target"], off["target"]) == ("uvicorn-meter", "uvicorn-nometer")
    assert on["load"]["completed"] > 0 and off["load"]["completed"] > 0
    assert not any(bench_outcome["logged_errors"].values()), bench_outcome["logs"]
    printed = bench_outcome["printed"]
    for label, target in TARGET_ROWS:
        _assert_row_measured(printed, label, target)
    assert "metering on vs off" in printed and "pair 1: on" in printed
    if "granian" in bench_outcome["servers"]:
        assert "Server choice" in printed


# The targets (#17) as the target table prints them in smoke mode
# (2 ms/token; 4 and 8 paced streams, 4 no-delay streams, 4 concurrent).
TARGET_ROWS = [
    ("2 ms/token, 4 streams: throughput", ">= 0.97x"),
    ("2 ms/token, 4 streams: first-token p99", "<= 2x"),
    ("2 ms/token, 4 streams: CPU per stream", "<= 1.3x floor"),
    ("2 ms/token, 8 streams: throughput", ">= 0.97x"),
    ("2 ms/token, 8 streams: first-token p99", "<= 2x"),
    ("2 ms/token, 8 streams: CPU per stream", "<= 1.3x floor"),
    ("no delay, 4 streams: CPU per stream", "<= 1.3x floor"),
    ("non-streaming, 4 concurrent: CPU per request", "<= 2.0x floor"),
    ("added latency, 1 client, non-stream p50", "<= 1.0 ms"),
    ("RSS of the worker at 8 streams", "<= 110 MB"),
]


def _assert_row_measured(printed: str, label: str, target: str) -> None:
    """The row is in the target table with a measured figure (a ratio, a
    latency or a size) right before its target and a verdict; a row judged
    against the floor shows the floor's own figure (in smoke mode a floor's
    CPU can read as zero, 10 ms clock ticks: then the ratio is "-", unjudged)."""
    row = re.compile(
        re.escape(label)
        + r"\s.*?(\d+\.\d+x|\+-?\d+\.\d+ ms|\d+ MB|-)\s+"
        + re.escape(target)
        + r"(?:\s+(yes|MISSED))?$",
        re.MULTILINE,
    )
    found = row.search(printed)
    assert found, (label, printed)
    line, measured, verdict = found.group(0), found.group(1), found.group(2)
    if "floor" in target:
        floor = re.search(r"floor (\d+\.\d+) ms", line)
        assert floor, line
        if float(floor.group(1)) == 0:
            assert measured == "-" and verdict is None, line
            return
    assert measured != "-" and verdict in ("yes", "MISSED"), line


def test_the_meter_write_bench_prints_both_writers(transactional_db: None) -> None:
    services_required(redis=False)
    finished = bench_run(
        "meterwrite.py",
        "--batch",
        "20",
        "--batches",
        "2",
        env={"BENCH_DATABASE_URL": run_database_url()},
        timeout=120,
    )
    assert "usage_records_create (JSON)" in finished.stdout
    assert "ORM bulk_create" in finished.stdout
    from usage.models import UsageRecord

    assert not UsageRecord.objects.exists(), "the bench deletes what it wrote"
