"""Usage exports as CSV or a JSON array, written as the rows stream in (the
command and the Settings > Usage download share them). The CSV goes through
portal.csvsafe: the model string is the client's choice, and a spreadsheet must
not run it as a formula."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from portal.csvsafe import CsvWriter, Writable
from usage.selectors import EXPORT_FIELDS


def usage_csv_write(rows: Iterable[dict[str, Any]], out: Writable) -> None:
    writer = CsvWriter(out)
    writer.writerow(EXPORT_FIELDS)
    for row in rows:
        writer.writerow(row[name] for name in EXPORT_FIELDS)


def usage_json_write(rows: Iterable[dict[str, Any]], out: Writable) -> None:
    out.write("[")
    first = True
    for row in rows:
        out.write("\n" if first else ",\n")
        out.write(json.dumps(row, separators=(", ", ": ")))
        first = False
    out.write("\n]\n" if not first else "]\n")
