"""The audit log of accounts: who changed which user, group membership and API
key, from where, and never a secret."""

from __future__ import annotations

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, User
from accounts.services import apikey_last_used_record, apikey_roll
from portal.audit import SECRET_SET
from tests.auditprobe import (
    STAFF_ADDRESS,
    admin_save,
    entries_for,
    logentry_text,
    staff_client,
)
from tests.factories import apikey_make

pytestmark = pytest.mark.django_db


def test_a_user_edited_in_admin_is_logged_with_actor_address_and_fields(
    staff: User, alice: User
) -> None:
    url = reverse("admin:accounts_user_change", args=[alice.pk])
    admin_save(
        staff_client(staff),
        url,
        {"email": "alice@lab.example.org", "is_staff": True, "last_name": "Liddell"},
    )
    created, entry = entries_for(alice)
    assert created.action == LogEntry.Action.CREATE
    assert entry.action == LogEntry.Action.UPDATE
    assert entry.actor == staff
    assert entry.remote_addr == STAFF_ADDRESS
    assert set(entry.changes_dict) == {"email", "is_staff", "last_name"}
    assert entry.changes_dict["is_staff"] == ["False", "True"]


def test_group_membership_added_and_removed_in_admin_is_logged(
    staff: User, alice: User
) -> None:
    researchers = Group.objects.create(name="researchers")
    client = staff_client(staff)
    url = reverse("admin:accounts_user_change", args=[alice.pk])
    admin_save(client, url, {"groups": [researchers.pk]})
    admin_save(client, url, {"groups": []})
    _created, added, removed = entries_for(alice)
    assert added.changes_dict == {
        "groups": {"type": "m2m", "operation": "add", "objects": ["researchers"]}
    }
    assert removed.changes_dict["groups"]["operation"] == "delete"
    assert removed.changes_dict["groups"]["objects"] == ["researchers"]
    for entry in (added, removed):
        assert (entry.actor, entry.remote_addr) == (staff, STAFF_ADDRESS)


def test_a_password_reset_is_logged_without_the_hash(staff: User, alice: User) -> None:
    old_hash = alice.password
    url = reverse("admin:auth_user_password_change", args=[alice.pk])
    response = staff_client(staff).post(
        url,
        {"password1": "a brand new passphrase", "password2": "a brand new passphrase"},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    entry = entries_for(alice)[-1]
    assert entry.changes_dict == {"password": [SECRET_SET, SECRET_SET]}
    assert entry.actor == staff
    text = logentry_text()
    for secret in (old_hash, alice.password, "a brand new passphrase"):
        assert secret.split("$")[-1] not in text


def test_a_key_is_logged_when_made_without_anything_cut_from_it(alice: User) -> None:
    issued = apikey_make(user=alice, name="laptop", allowed_models=["fake-chat"])
    [entry] = entries_for(issued.key)
    assert entry.action == LogEntry.Action.CREATE
    assert entry.changes_dict["name"] == ["None", "laptop"]
    assert entry.changes_dict["allowed_models"] == ["None", '["fake-chat"]']
    assert not {"digest", "lookup_id", "prefix", "last4", "last_used_at"} & set(
        entry.changes_dict
    )
    text = logentry_text()
    for secret in (issued.raw, issued.key.digest, issued.key.lookup_id):
        assert secret not in text


def test_a_key_renamed_in_admin_is_logged(staff: User, alice: User) -> None:
    issued = apikey_make(user=alice, name="laptop")
    url = reverse("admin:accounts_apikey_change", args=[issued.key.pk])
    admin_save(staff_client(staff), url, {"name": "cluster job"})
    _created, renamed = entries_for(issued.key)
    assert renamed.changes_dict == {"name": ["laptop", "cluster job"]}
    assert (renamed.actor, renamed.remote_addr) == (staff, STAFF_ADDRESS)


def test_the_proxys_last_use_writes_are_not_audited(alice: User) -> None:
    issued = apikey_make(user=alice)
    before = LogEntry.objects.count()
    assert apikey_last_used_record(key_ids=[issued.key.pk], used_at=timezone.now())
    assert LogEntry.objects.count() == before


def test_a_roll_logs_the_old_keys_end_and_the_new_key(alice: User) -> None:
    issued = apikey_make(user=alice, expires_at=timezone.now() + timedelta(days=30))
    new = apikey_roll(key=issued.key, grace_seconds=0)
    old_entries = entries_for(issued.key)
    assert set(old_entries[-1].changes_dict) == {"revoked_at"}
    assert entries_for(new.key)[0].action == LogEntry.Action.CREATE
    assert new.raw not in logentry_text()


def test_revokekey_leaves_an_entry_made_by_the_command(alice: User) -> None:
    issued = apikey_make(user=alice)
    call_command("revokekey", issued.key.lookup_id)
    key = ApiKey.objects.get(pk=issued.key.pk)
    entry = entries_for(key)[-1]
    assert entry.changes_dict["revoked_at"][0] == "None"
    assert entry.changes_dict["revoked_at"][1] != "None"
    assert entry.actor is None
    assert entry.actor_email == "system/command:revokekey"
    assert entry.remote_addr is None
    assert entry.cid.startswith("cmd-revokekey-")
    # Revoking again changes nothing, and logs nothing.
    call_command("revokekey", issued.key.lookup_id)
    updates = [e for e in entries_for(key) if e.action == LogEntry.Action.UPDATE]
    assert updates == [entry]


def test_a_key_revoked_in_admin_is_logged(staff: User, alice: User) -> None:
    issued = apikey_make(user=alice)
    staff_client(staff).post(
        reverse("admin:accounts_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [issued.key.pk]},
    )
    assert ApiKey.objects.get(pk=issued.key.pk).revoked_at is not None
    revoked = entries_for(issued.key)[-1]
    assert set(revoked.changes_dict) == {"revoked_at"}
    assert (revoked.actor, revoked.remote_addr) == (staff, STAFF_ADDRESS)


def test_a_groups_permissions_are_logged(staff: User) -> None:
    group = Group.objects.create(name="operators")
    permission = Permission.objects.get(
        codename="view_logentry", content_type__app_label="auditlog"
    )
    url = reverse("admin:auth_group_change", args=[group.pk])
    admin_save(staff_client(staff), url, {"permissions": [permission.pk]})
    _created, changed = entries_for(group)
    assert changed.changes_dict["permissions"]["operation"] == "add"
    assert changed.actor == staff
