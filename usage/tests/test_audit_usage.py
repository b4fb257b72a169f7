"""The audit log of quotas: who set which allowance, from where."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts.models import User
from tests.auditprobe import STAFF_ADDRESS, admin_save, entries_for, staff_client
from usage.models import Quota

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_hashing(fast_password_hashing: None) -> None:
    """Nothing here depends on the password hasher."""


def test_a_quota_added_and_changed_in_admin_is_logged(staff: User, alice: User) -> None:
    client = staff_client(staff)
    admin_save(
        client,
        reverse("admin:usage_quota_add"),
        {"user": alice.pk, "tokens": 100_000, "period": "day"},
    )
    quota = Quota.objects.get(user=alice)
    url = reverse("admin:usage_quota_change", args=[quota.pk])
    admin_save(client, url, {"tokens": 250_000, "period": "week"})
    created, changed = entries_for(quota)
    assert created.action == LogEntry.Action.CREATE
    assert changed.changes_dict == {
        "tokens": ["100000", "250000"],
        "period": ["day", "week"],
    }
    for entry in (created, changed):
        assert (entry.actor, entry.remote_addr) == (staff, STAFF_ADDRESS)


def test_a_group_quota_deleted_in_admin_is_logged(staff: User) -> None:
    group = Group.objects.create(name="students")
    quota = Quota.objects.create(group=group, tokens=5_000, period="day")
    url = reverse("admin:usage_quota_delete", args=[quota.pk])
    assert staff_client(staff).post(url, {"post": "yes"}).status_code == 302
    deleted = entries_for(quota)[-1]
    assert deleted.action == LogEntry.Action.DELETE
    assert deleted.actor == staff
