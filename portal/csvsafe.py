"""The one way Portico writes CSV: every cell is data, never a formula.

Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` (and some a tab
or a carriage return before one) as a formula, so a model string chosen by a
client, such as `=HYPERLINK("http://evil","x")`, would run on the machine of
the staff member who opens the report (CSV injection). The OWASP rule: such a
string cell gets a single quote in front, which spreadsheets show as text.

Only strings are escaped: a number such as -5 is data and stays a number.
Rows end in CRLF (RFC 4180) rather than `\n` alone: the csv module quotes a
field that holds a character of the line terminator, and a carriage return left
unquoted inside a cell starts a new row in spreadsheets, whose first cell
(`x\r=1+1`) would escape the rule above. Infrastructure: imports nothing from
the apps.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Protocol

# The first characters that make a spreadsheet read a cell as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def csv_cell(value: object) -> object:
    """The value as a spreadsheet will take it as data."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


class CsvWriter:
    """csv.writer (Excel's dialect: minimal quoting, CRLF) with every cell
    passed through csv_cell: the only CSV writer Portico uses."""

    def __init__(self, out: Writable) -> None:
        self._writer = csv.writer(out, lineterminator="\r\n")

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([csv_cell(value) for value in row])
