"""Usage exports as CSV or a JSON array, written as the rows stream in (the
command and the Settings > Usage download share them)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any, Protocol

from usage.selectors import EXPORT_FIELDS


class Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def usage_csv_write(rows: Iterable[dict[str, Any]], out: Writable) -> None:
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)


def usage_json_write(rows: Iterable[dict[str, Any]], out: Writable) -> None:
    out.write("[")
    first = True
    for row in rows:
        out.write("\n" if first else ",\n")
        out.write(json.dumps(row, separators=(", ", ": ")))
        first = False
    out.write("\n]\n" if not first else "]\n")
