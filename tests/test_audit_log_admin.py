"""Staff read the audit log in admin, filter it and export it as CSV; the
export holds no secret; the recorded address is one no client can forge."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from portal.auditadmin import EXPORT_COLUMNS
from tests.auditprobe import STAFF_ADDRESS, admin_form_data, admin_save, staff_client
from tests.factories import apikey_make, backend_make, model_make, user_make

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/auditlog/logentry/"
EXPORT = "/admin/auditlog/logentry/export/"
BACKEND_KEY = "sk-upstream-4b1d9e7c2a0f"


@pytest.fixture(autouse=True)
def _fast_hashing(fast_password_hashing: None) -> None:
    """Nothing here depends on the password hasher."""


@pytest.fixture
def auditor(db: None) -> User:
    """Staff who may read the audit log, and nothing else."""
    user = user_make(username="auditor", is_staff=True)
    group = Group.objects.create(name="auditors")
    group.permissions.add(
        Permission.objects.get(
            codename="view_logentry", content_type__app_label="auditlog"
        )
    )
    user.groups.add(group)
    return user


@pytest.fixture
def clerk(db: None) -> User:
    """Staff without the audit log's permission."""
    return user_make(username="clerk", is_staff=True)


def _rows(response: object) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_log_lists_and_filters_by_model_actor_and_date(
    staff: User, alice: User
) -> None:
    client = staff_client(staff)
    model = model_make(public_id="llama")
    url = reverse("admin:catalog_model_change", args=[model.pk])
    admin_save(client, url, {"display_name": "Llama"})
    listing = client.get(CHANGELIST)
    assert listing.status_code == 200
    assert STAFF_ADDRESS in listing.content.decode()
    assert b"Export CSV" in listing.content
    model_type = ContentType.objects.get_for_model(model)
    # As the date filter's "Today" link writes it: local midnight, aware.
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    for query in [
        {"resource_type": model_type.pk},
        {"actor__id__exact": staff.pk},
        {"timestamp__gte": str(today)},
    ]:
        found = client.get(CHANGELIST, query).context["cl"].result_list
        assert any(entry.object_repr == "llama" for entry in found), query
        if "actor__id__exact" in query:
            assert {entry.actor_id for entry in found} == {staff.pk}
    searched = client.get(CHANGELIST, {"q": "203.0.113"}).context["cl"].result_list
    assert {entry.remote_addr for entry in searched} == {STAFF_ADDRESS}
    # The export button carries the filters of the list it sits on.
    filtered = client.get(CHANGELIST, {"actor__id__exact": staff.pk})
    assert f'href="{EXPORT}?actor__id__exact={staff.pk}"' in filtered.content.decode()
    tomorrow = str(today + timedelta(days=1))
    later = client.get(CHANGELIST, {"timestamp__gte": tomorrow})
    assert list(later.context["cl"].result_list) == []
    entry = LogEntry.objects.filter(actor=staff).first()
    detail = client.get(reverse("admin:auditlog_logentry_change", args=[entry.pk]))
    assert detail.status_code == 200


def test_staff_with_the_view_permission_export_the_filtered_log(
    auditor: User, staff: User
) -> None:
    model = model_make(public_id="llama")
    url = reverse("admin:catalog_model_change", args=[model.pk])
    admin_save(staff_client(staff), url, {"display_name": "Llama"})
    rows = _rows(staff_client(auditor).get(EXPORT, {"actor__id__exact": staff.pk}))
    assert list(rows[0]) == EXPORT_COLUMNS
    [row] = rows
    assert row["model"] == "catalog.model"
    assert row["object"] == "llama"
    assert row["actor"] == "operator"
    assert row["remote_addr"] == STAFF_ADDRESS
    assert row["action"] == "update"
    assert '"display_name": ["", "Llama"]' in row["changes"]


def test_the_export_action_writes_the_selected_entries(staff: User) -> None:
    backend_make(name="gpu01")
    backend_make(name="gpu02")
    chosen = LogEntry.objects.get(object_repr="gpu02")
    response = staff_client(staff).post(
        CHANGELIST, {"action": "export_csv", "_selected_action": [chosen.pk]}
    )
    [row] = _rows(response)
    assert (row["object"], row["action"]) == ("gpu02", "create")


def test_staff_without_the_permission_can_neither_read_nor_export(
    clerk: User, staff: User
) -> None:
    backend_make()
    entry = LogEntry.objects.first()
    client = staff_client(clerk)
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(EXPORT).status_code == 403
    action = {"action": "export_csv", "_selected_action": [entry.pk]}
    assert client.post(CHANGELIST, action).status_code == 403
    anonymous = Client().get(EXPORT)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_the_export_never_holds_a_secret(staff: User, alice: User) -> None:
    client = staff_client(staff)
    backend = backend_make(api_key="sk-upstream-first-0a1b2c")
    url = reverse("admin:catalog_backend_change", args=[backend.pk])
    admin_save(client, url, {"api_key": BACKEND_KEY})
    issued = apikey_make(user=alice)
    call_command("revokekey", issued.key.lookup_id)
    password_url = reverse("admin:auth_user_password_change", args=[alice.pk])
    client.post(
        password_url, {"password1": "n3w passphrase", "password2": "n3w passphrase"}
    )
    alice.refresh_from_db()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key FROM apiproxy_backend WHERE id = %s", [backend.pk]
        )
        [ciphertext] = cursor.fetchone()
    body = client.get(EXPORT).content.decode()
    assert "system/command:revokekey" in body
    for secret in [
        BACKEND_KEY,
        "sk-upstream-first-0a1b2c",
        issued.raw,
        issued.key.digest,
        issued.key.lookup_id,
        alice.password.split("$")[-1],
        "n3w passphrase",
        ciphertext,
    ]:
        assert secret not in body


def test_cells_that_a_spreadsheet_would_run_are_escaped(staff: User) -> None:
    model_make(public_id="=HYPERLINK(evil)")
    rows = _rows(staff_client(staff).get(EXPORT))
    assert "'=HYPERLINK(evil)" in {row["object"] for row in rows}


def test_the_recorded_address_ignores_forwarded_headers(settings, staff: User) -> None:
    """portal.audit's middleware takes the address the server vouches for
    (uvicorn rewrites it from X-Forwarded-For for trusted proxies only) and
    makes its own correlation id."""
    settings.MIDDLEWARE = [
        "portal.audit.AuditlogMiddleware"
        if name == "auditlog.middleware.AuditlogMiddleware"
        else name
        for name in settings.MIDDLEWARE
    ]
    assert "portal.audit.AuditlogMiddleware" in settings.MIDDLEWARE
    backend = backend_make()
    client = staff_client(staff, address="198.51.100.23")
    url = reverse("admin:catalog_backend_change", args=[backend.pk])
    data = admin_form_data(client.get(url)) | {"max_concurrency": 9}
    response = client.post(
        url,
        data,
        HTTP_X_FORWARDED_FOR="192.0.2.66, 198.51.100.23",
        HTTP_X_FORWARDED_PORT="4444",
        HTTP_X_CORRELATION_ID="planted",
    )
    assert response.status_code == 302
    entry = LogEntry.objects.filter(actor=staff).get()
    assert entry.remote_addr == "198.51.100.23"
    assert entry.remote_port is None
    assert entry.cid.startswith("req-")
