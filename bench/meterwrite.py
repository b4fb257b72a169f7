"""The meter's batch write alone: CPU and wall time per record for the writer
Portico uses (`usage_records_create`: one INSERT ... SELECT over a JSON array
per batch) against the Django ORM's `bulk_create` of model instances.

The writer runs in a thread of the serving process, so its CPU is taken from
the event loop (the GIL): CPU per record is the figure that matters.

    .venv/bin/python bench/meterwrite.py [--batch 500] [--batches 20]

Uses the benchmark's database (BENCH_DATABASE_URL, default `bench`, migrated
by bench/run.py) and deletes the records it wrote.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args(argv)
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench"
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from usage.metering import MeteredRow
    from usage.models import UsageRecord
    from usage.recordwrite import ROW_COLUMNS, row_values, usage_records_create

    marker = "meterwrite-" + uuid.uuid4().hex[:8]

    def rows() -> list[MeteredRow]:
        now = datetime.now(UTC)
        return [
            MeteredRow(
                request_id=f"{marker}-{uuid.uuid4().hex}",
                user_id=1,
                key_id=1,
                model="bench-0ms",
                backend_id=1,
                endpoint="chat/completions",
                client="api",
                stream=True,
                status=200,
                finish_reason="stop",
                prompt_tokens=12,
                completion_tokens=64,
                usage_source="reported",
                weighted_tokens=76,
                ttft_ms=3,
                duration_ms=20,
                retry_count=0,
                started_at=now,
            )
            for _ in range(args.batch)
        ]

    def orm_bulk_create(batch: Sequence[MeteredRow]) -> None:
        records = [
            UsageRecord(**dict(zip(ROW_COLUMNS, row_values(row), strict=True)))
            for row in batch
        ]
        UsageRecord.objects.bulk_create(records, ignore_conflicts=True)

    def json_insert(batch: Sequence[MeteredRow]) -> None:
        usage_records_create(rows=batch)

    writers: dict[str, Callable[[Sequence[MeteredRow]], None]] = {
        "usage_records_create (JSON)": json_insert,
        "ORM bulk_create": orm_bulk_create,
    }
    cpu: dict[str, list[float]] = {name: [] for name in writers}
    wall: dict[str, list[float]] = {name: [] for name in writers}
    try:
        for writer in writers.values():
            writer(rows())  # connection and statement warm-up
        # Interleaved, so that both see the same drift of a shared machine.
        for _ in range(args.batches):
            for name, writer in writers.items():
                batch = rows()
                cpu_start, wall_start = time.process_time(), time.perf_counter()
                writer(batch)
                cpu[name].append(time.process_time() - cpu_start)
                wall[name].append(time.perf_counter() - wall_start)
    finally:
        UsageRecord.objects.filter(request_id__startswith=marker).delete()
    print(
        f"meter batch write, {args.batch} records a batch, median of "
        f"{args.batches} batches each (interleaved)"
    )
    for name in writers:
        per_cpu = median(cpu[name]) / args.batch * 1e6
        per_wall = median(wall[name]) / args.batch * 1e6
        print(f"  {name:32} {per_cpu:6.1f} us CPU, {per_wall:6.1f} us wall per record")
    return 0


if __name__ == "__main__":
    sys.exit(main())
