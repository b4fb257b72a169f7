"""The audit log of the catalog: backends (never their API key), models, routes,
limits and access requests, as staff change them in admin."""

from __future__ import annotations

import io

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from catalog.models import (
    AccessRequest,
    Backend,
    Deployment,
    GroupLimits,
    KeyLimits,
    UserLimits,
)
from catalog.models import Model as CatalogModel
from portal.audit import SECRET_EMPTY, SECRET_SET
from tests.auditprobe import (
    STAFF_ADDRESS,
    admin_save,
    entries_for,
    logentry_text,
    staff_client,
)
from tests.factories import apikey_make, backend_make, model_make

pytestmark = pytest.mark.django_db

OLD_KEY = "sk-upstream-old-3f9a1c0b7d"
NEW_KEY = "sk-upstream-new-8e2d4f6a1b"


def _stored_ciphertext(backend: Backend) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key FROM apiproxy_backend WHERE id = %s", [backend.pk]
        )
        return cursor.fetchone()[0]


def _assert_keys_absent(*secrets: str) -> None:
    text = logentry_text()
    for secret in secrets:
        assert secret not in text


def test_a_backend_key_change_is_logged_without_the_key(staff: User) -> None:
    backend = backend_make(api_key=OLD_KEY)
    old_ciphertext = _stored_ciphertext(backend)
    url = reverse("admin:catalog_backend_change", args=[backend.pk])
    admin_save(staff_client(staff), url, {"api_key": NEW_KEY, "max_concurrency": 8})
    backend.refresh_from_db()
    assert backend.api_key == NEW_KEY
    created, changed = entries_for(backend)
    assert changed.changes_dict == {
        "api_key": [SECRET_SET, SECRET_SET],
        "max_concurrency": ["4", "8"],
    }
    assert (changed.actor, changed.remote_addr) == (staff, STAFF_ADDRESS)
    assert created.changes_dict["api_key"] == [SECRET_EMPTY, SECRET_SET]
    _assert_keys_absent(OLD_KEY, NEW_KEY, old_ciphertext, _stored_ciphertext(backend))


def test_a_backend_key_removed_or_left_alone_in_admin(staff: User) -> None:
    backend = backend_make(api_key=OLD_KEY)
    client = staff_client(staff)
    url = reverse("admin:catalog_backend_change", args=[backend.pk])
    admin_save(client, url, {"enabled": False})
    admin_save(client, url, {"clear_api_key": True})
    _, disabled, cleared = entries_for(backend)
    assert disabled.changes_dict == {"enabled": ["True", "False"]}
    assert cleared.changes_dict == {"api_key": [SECRET_SET, SECRET_EMPTY]}
    _assert_keys_absent(OLD_KEY)


def test_a_backend_added_in_admin_is_logged_without_its_key(staff: User) -> None:
    url = reverse("admin:catalog_backend_add")
    admin_save(
        staff_client(staff),
        url,
        {
            "name": "gpu02",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key": NEW_KEY,
            "enabled": True,
            "max_concurrency": 2,
        },
    )
    backend = Backend.objects.get(name="gpu02")
    [entry] = entries_for(backend)
    assert entry.action == LogEntry.Action.CREATE
    assert entry.actor == staff
    assert entry.changes_dict["base_url"] == ["None", "http://127.0.0.1:9/v1"]
    assert set(entry.changes_dict) <= {
        "name",
        "base_url",
        "api_key",
        "enabled",
        "pool",
        "max_concurrency",
        "software",
    }
    _assert_keys_absent(NEW_KEY, _stored_ciphertext(backend))


def test_health_checks_write_no_entries() -> None:
    backend = backend_make()
    before = LogEntry.objects.count()
    Backend.objects.filter(pk=backend.pk).update(healthy=False, last_error="down")
    backend.last_checked_at = timezone.now()
    backend.save()
    assert LogEntry.objects.count() == before


def test_a_model_and_its_access_groups_edited_in_admin_are_logged(
    staff: User,
) -> None:
    model = model_make(public_id="llama")
    researchers = Group.objects.create(name="researchers")
    url = reverse("admin:catalog_model_change", args=[model.pk])
    admin_save(
        staff_client(staff),
        url,
        {"display_name": "Llama", "everyone": False, "access_groups": [researchers.pk]},
    )
    entries = entries_for(model)
    fields = entries[-2].changes_dict
    assert fields["display_name"] == ["", "Llama"]
    assert fields["everyone"] == ["True", "False"]
    assert entries[-1].changes_dict["access_groups"] == {
        "type": "m2m",
        "operation": "add",
        "objects": ["researchers"],
    }
    for entry in entries[-2:]:
        assert (entry.actor, entry.remote_addr) == (staff, STAFF_ADDRESS)


def test_a_route_edited_in_admin_is_logged_but_discovery_sightings_are_not(
    staff: User,
) -> None:
    model_make(public_id="llama")
    route = Deployment.objects.get()
    route.last_seen_at = timezone.now()
    route.save(update_fields=["last_seen_at", "updated_at"])
    url = reverse("admin:catalog_deployment_change", args=[route.pk])
    admin_save(staff_client(staff), url, {"upstream_model": "llama-3.1-8b"})
    _created, edited = entries_for(route)
    assert edited.changes_dict == {"upstream_model": ["llama", "llama-3.1-8b"]}
    assert edited.actor == staff


def test_group_limits_edited_on_the_group_page_are_logged(staff: User) -> None:
    group = Group.objects.create(name="performance")
    limits = GroupLimits.objects.create(group=group, rpm=60)
    url = reverse("admin:auth_group_change", args=[group.pk])
    admin_save(staff_client(staff), url, {"portico_limits-0-rpm": 600})
    edited = entries_for(limits)[-1]
    assert edited.changes_dict == {"rpm": ["60", "600"]}
    assert (edited.actor, edited.remote_addr) == (staff, STAFF_ADDRESS)


def test_user_and_key_limits_added_in_admin_are_logged(
    staff: User, alice: User
) -> None:
    client = staff_client(staff)
    admin_save(
        client,
        reverse("admin:catalog_userlimits_add"),
        {"user": alice.pk, "rpm": 30, "tpm": ""},
    )
    key = apikey_make(user=alice).key
    admin_save(
        client,
        reverse("admin:catalog_keylimits_add"),
        {"key": key.pk, "rpm": "", "tpm": 5000},
    )
    user_entry = entries_for(UserLimits.objects.get(user=alice))[0]
    key_entry = entries_for(KeyLimits.objects.get(key=key))[0]
    assert user_entry.changes_dict["rpm"] == ["None", "30"]
    assert key_entry.changes_dict["tpm"] == ["None", "5000"]
    for entry in (user_entry, key_entry):
        assert (entry.actor, entry.remote_addr) == (staff, STAFF_ADDRESS)


def test_an_access_request_approved_in_admin_logs_decision_and_membership(
    staff: User, alice: User, django_capture_on_commit_callbacks
) -> None:
    group = Group.objects.create(name="performance")
    GroupLimits.objects.create(group=group, requestable=True)
    request = AccessRequest.objects.create(user=alice, group=group, use_case="NLP")
    with django_capture_on_commit_callbacks(execute=True):
        staff_client(staff).post(
            reverse("admin:catalog_accessrequest_changelist"),
            {"action": "approve", "_selected_action": [request.pk]},
        )
    decided = entries_for(request)[-1]
    assert decided.changes_dict["state"] == ["pending", "approved"]
    assert decided.actor == staff
    membership = entries_for(alice)[-1]
    assert membership.changes_dict["groups"]["objects"] == ["performance"]
    assert (membership.actor, membership.remote_addr) == (staff, STAFF_ADDRESS)
    assert membership.cid == decided.cid


def test_issuekey_records_what_it_made_as_the_command() -> None:
    out = io.StringIO()
    call_command("issuekey", "dave", "--create-user", "--rpm", "5", stdout=out)
    raw = out.getvalue().strip()
    dave = User.objects.get(username="dave")
    entries = [
        entries_for(dave)[0],
        entries_for(dave.api_keys.get())[0],
        entries_for(KeyLimits.objects.get(key__user=dave))[0],
    ]
    for entry in entries:
        assert entry.action == LogEntry.Action.CREATE
        assert entry.actor is None
        assert entry.actor_email == "system/command:issuekey"
    assert len({entry.cid for entry in entries}) == 1
    assert entries[0].cid.startswith("cmd-issuekey-")
    assert raw and raw not in logentry_text()


def test_a_model_deleted_in_admin_is_logged(staff: User) -> None:
    model = model_make(public_id="old-model")
    pk = model.pk
    url = reverse("admin:catalog_model_delete", args=[pk])
    response = staff_client(staff).post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not CatalogModel.objects.filter(pk=pk).exists()
    deleted = LogEntry.objects.filter(
        object_id=pk, action=LogEntry.Action.DELETE, object_repr="old-model"
    ).get()
    assert deleted.actor == staff
