"""The soak (bench/soak.py) in its smoke mode: a minute of the mixed load, with
the backend killed and Redis and PostgreSQL restarted, so that the harness
cannot rot. It asserts what the soak exists to check (the books balance,
nothing is left held or open once the load stops, every minute was sampled)
and never a timing: those belong in docs/benchmarks.md."""

from __future__ import annotations

import glob
import json
import shutil
from pathlib import Path

import pytest

from tests.benchrun import bench_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    not glob.glob("/usr/lib/postgresql/*/bin/initdb")
    or not shutil.which("redis-server"),
    reason="the soak starts its own PostgreSQL and Redis (Debian's packages)",
)
def test_the_soak_balances_its_books_through_restarts(tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    bench_run(
        "soak.py",
        "--smoke",
        "--json",
        str(report),
        "--plot",
        str(tmp_path / "soak.png"),
        "--log-dir",
        str(tmp_path),
    )
    summary = json.loads(report.read_text())
    assert [event["what"] for event in summary["events"]] == [
        "backend",
        "redis",
        "postgres",
    ]
    books = summary["books"]
    assert books["metered_answers"] > 0
    assert books["missing"] == 0, books
    assert books["exact"], books
    assert summary["drained"]
    outcomes = summary["outcomes"]
    for served in ("200 stream", "200 json", "200 embeddings", "left mid-stream"):
        assert outcomes.get(served, 0) > 0, outcomes
    assert any("backend_stream_interrupted" in outcome for outcome in outcomes)
    final = summary["final"]
    assert final["redis"]["slots_held"] == 0
    for worker in final["workers"].values():
        assert worker["portico_slot_leases_held"] == 0
        assert worker["portico_usage_buffer_records"] == 0
        assert worker["connections"].get("clients", 0) == 0
        assert worker["connections"].get("backend", 0) == 0
        assert worker["portico_event_loop_lag_p99_seconds"] >= 0
        assert worker["rss_mb"] > 0
    assert len(summary["samples"]) >= 5
    assert set(summary["rss_growth"]) == {"worker-1", "worker-2"}
    assert (tmp_path / "soak.png").stat().st_size > 0
