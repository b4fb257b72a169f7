"""An installation upgraded across the move of the catalog models keeps its data.

Backend, Model, Deployment, the limits and AccessRequest were apiproxy's models
(apiproxy 0001-0003) and now belong to `catalog`, on the same tables, through
state-only migrations (catalog 0001, usage 0004, ops 0002, apiproxy 0004).
A mistake there (a real DeleteModel, a CreateModel that touches the database,
a foreign key left on the old model) would drop or orphan production rows
only on the first upgrade, which no test built on a fresh database sees. So
this test migrates the database back to the state just before the move,
fills every moved table and every table that points at them through the
historical models, migrates forward and reads it all back through the
current models. Staff rights travel with the content types, so a group's
permission on the old `apiproxy.backend` must now be `catalog.view_backend`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

# The latest migration of each app before the move; catalog did not exist.
BEFORE_MOVE = [
    ("apiproxy", "0003_access_requests"),
    ("usage", "0003_usage_report"),
    ("ops", "0001_initial"),
    ("catalog", None),
]

MOVED_TABLES = (
    "apiproxy_backend",
    "apiproxy_model",
    "apiproxy_model_access_groups",
    "apiproxy_deployment",
    "apiproxy_grouplimits",
    "apiproxy_userlimits",
    "apiproxy_keylimits",
    "apiproxy_accessrequest",
)

BACKEND_API_KEY = "sk-backend-secret-0123456789"
WHEN = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)


def _migrate_to_latest() -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def migrated_back() -> Iterator[object]:
    """The historical apps at the state before the move, with the database
    migrated there; the database is fully migrated again afterwards whatever
    happens, since every other test expects it so."""
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(BEFORE_MOVE)
        executor.loader.build_graph()
        yield executor.loader.project_state(
            [(app, name) for app, name in BEFORE_MOVE if name is not None]
        ).apps
    finally:
        _migrate_to_latest()
        from django.contrib.contenttypes.models import ContentType

        ContentType.objects.clear_cache()


def _table_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in MOVED_TABLES:
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
        return counts


def _old_data_make(apps) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """One row in every moved table and every table pointing at them, written
    through apiproxy's historical models; their primary keys by name."""
    User = apps.get_model("accounts", "User")
    ApiKey = apps.get_model("accounts", "ApiKey")
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    Backend = apps.get_model("apiproxy", "Backend")
    Model = apps.get_model("apiproxy", "Model")
    Deployment = apps.get_model("apiproxy", "Deployment")
    GroupLimits = apps.get_model("apiproxy", "GroupLimits")
    UserLimits = apps.get_model("apiproxy", "UserLimits")
    KeyLimits = apps.get_model("apiproxy", "KeyLimits")
    AccessRequest = apps.get_model("apiproxy", "AccessRequest")
    UsageRecord = apps.get_model("usage", "UsageRecord")
    BackendAlertState = apps.get_model("ops", "BackendAlertState")

    user = User.objects.create(username="oldtimer", email="oldtimer@example.org")
    staff = User.objects.create(username="oldstaff", is_staff=True)
    group = Group.objects.create(name="gpu-class")
    user.groups.add(group)
    backend_type, _ = ContentType.objects.get_or_create(
        app_label="apiproxy", model="backend"
    )
    permission, _ = Permission.objects.get_or_create(
        content_type=backend_type,
        codename="view_backend",
        defaults={"name": "Can view backend"},
    )
    group.permissions.add(permission)

    backend = Backend.objects.create(
        name="gpu01",
        base_url="http://gpu01:8000/v1",
        api_key=BACKEND_API_KEY,
        pool="dedicated",
        max_concurrency=7,
        healthy=False,
        last_checked_at=WHEN,
        last_error="connection refused",
    )
    model = Model.objects.create(
        public_id="llama-3-70b",
        display_name="Llama 3 70B",
        context_window=8192,
        max_output_tokens=2048,
        supports_vision=True,
        capabilities_locked=True,
        everyone=False,
        recommended_params={"temperature": 0.7},
        quota_weight=Decimal("2.500"),
    )
    model.access_groups.add(group)
    deployment = Deployment.objects.create(
        model=model,
        backend=backend,
        upstream_model="meta-llama/Meta-Llama-3-70B-Instruct",
        served=False,
        reported_context_window=8192,
        last_seen_at=WHEN,
    )
    group_limits = GroupLimits.objects.create(
        group=group,
        rpm=120,
        tpm=200_000,
        dedicated_access=True,
        requestable=True,
        description="Reserved GPUs",
    )
    user_limits = UserLimits.objects.create(user=user, rpm=0, tpm=None)
    key = ApiKey.objects.create(
        user=user,
        name="laptop",
        lookup_id="abcdef0123456789",
        digest="0" * 64,
        prefix="pk-abcdef01",
        last4="wxyz",
        allowed_models=["llama-3-70b"],
    )
    key_limits = KeyLimits.objects.create(key=key, rpm=30, tpm=None)
    access_request = AccessRequest.objects.create(
        user=user,
        group=group,
        use_case="Fine-tuning experiments",
        models_wanted="llama-3-70b",
        expected_volume="1M tokens a day",
        state="approved",
        staff_note="Welcome",
        decided_by=staff,
        decided_at=WHEN,
    )
    record = UsageRecord.objects.create(
        request_id="req-before-the-move",
        user=user,
        key=key,
        model="llama-3-70b",
        backend=backend,
        endpoint="chat",
        status=200,
        prompt_tokens=11,
        completion_tokens=22,
        weighted_tokens=82,
        started_at=WHEN,
    )
    BackendAlertState.objects.create(
        backend=backend, failed_checks=3, reported_down=True, reported_at=WHEN
    )
    return {
        "user": user.pk,
        "staff": staff.pk,
        "group": group.pk,
        "permission": permission.pk,
        "backend": backend.pk,
        "model": model.pk,
        "deployment": deployment.pk,
        "group_limits": group_limits.pk,
        "user_limits": user_limits.pk,
        "key": key.pk,
        "key_limits": key_limits.pk,
        "access_request": access_request.pk,
        "record": record.pk,
    }


@pytest.mark.django_db(transaction=True)
def test_every_row_survives_the_move_to_catalog(migrated_back) -> None:  # type: ignore[no-untyped-def]
    pks = _old_data_make(migrated_back)
    counts_before = _table_counts()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key FROM apiproxy_backend WHERE id = %s", [pks["backend"]]
        )
        stored_key = cursor.fetchone()[0]
    assert stored_key
    assert stored_key != BACKEND_API_KEY  # encrypted at rest before the move

    _migrate_to_latest()

    from django.contrib.auth.models import Group
    from django.contrib.contenttypes.models import ContentType

    from accounts.models import User
    from catalog.models import (
        AccessRequest,
        Backend,
        Deployment,
        GroupLimits,
        KeyLimits,
        Model,
        UserLimits,
    )
    from ops.models import BackendAlertState
    from usage.models import UsageRecord

    ContentType.objects.clear_cache()
    assert _table_counts() == counts_before

    backend = Backend.objects.get(pk=pks["backend"])
    assert (backend.name, backend.base_url) == ("gpu01", "http://gpu01:8000/v1")
    assert backend.api_key == BACKEND_API_KEY
    assert backend.pool == Backend.Pool.DEDICATED
    assert backend.max_concurrency == 7
    assert backend.healthy is False
    assert backend.last_checked_at == WHEN
    assert backend.last_error == "connection refused"

    model = Model.objects.get(pk=pks["model"])
    assert model.public_id == "llama-3-70b"
    assert model.display_name == "Llama 3 70B"
    assert (model.context_window, model.max_output_tokens) == (8192, 2048)
    assert model.capabilities == {
        "chat",
        "completions",
        "vision",
        "tools",
        "json_schema",
    }
    assert model.capabilities_locked is True
    assert model.everyone is False
    assert model.recommended_params == {"temperature": 0.7}
    assert model.quota_weight == Decimal("2.5")
    assert list(model.access_groups.values_list("pk", flat=True)) == [pks["group"]]

    deployment = Deployment.objects.get(pk=pks["deployment"])
    assert (deployment.model_id, deployment.backend_id) == (
        pks["model"],
        pks["backend"],
    )
    assert deployment.upstream_model == "meta-llama/Meta-Llama-3-70B-Instruct"
    assert deployment.served is False
    assert deployment.reported_context_window == 8192
    assert deployment.last_seen_at == WHEN
    assert list(backend.deployments.all()) == [deployment]

    group_limits = GroupLimits.objects.get(pk=pks["group_limits"])
    assert group_limits.group_id == pks["group"]
    assert (group_limits.rpm, group_limits.tpm) == (120, 200_000)
    assert group_limits.dedicated_access is True
    assert group_limits.requestable is True
    assert group_limits.description == "Reserved GPUs"
    assert Group.objects.get(pk=pks["group"]).portico_limits == group_limits

    user = User.objects.get(pk=pks["user"])
    user_limits = UserLimits.objects.get(pk=pks["user_limits"])
    assert (user_limits.user_id, user_limits.rpm, user_limits.tpm) == (
        pks["user"],
        0,
        None,
    )
    assert user.limits == user_limits

    key_limits = KeyLimits.objects.get(pk=pks["key_limits"])
    assert (key_limits.key_id, key_limits.rpm, key_limits.tpm) == (
        pks["key"],
        30,
        None,
    )
    assert user.api_keys.get().limits == key_limits

    access_request = AccessRequest.objects.get(pk=pks["access_request"])
    assert (access_request.user_id, access_request.group_id) == (
        pks["user"],
        pks["group"],
    )
    assert access_request.state == AccessRequest.State.APPROVED
    assert access_request.use_case == "Fine-tuning experiments"
    assert access_request.models_wanted == "llama-3-70b"
    assert access_request.expected_volume == "1M tokens a day"
    assert access_request.staff_note == "Welcome"
    assert access_request.decided_by_id == pks["staff"]
    assert access_request.decided_at == WHEN

    record = UsageRecord.objects.get(pk=pks["record"])
    assert record.backend_id == pks["backend"]
    assert record.backend == backend
    assert (record.user_id, record.key_id) == (pks["user"], pks["key"])

    alert = BackendAlertState.objects.get(pk=pks["backend"])
    assert alert.backend == backend
    assert (alert.failed_checks, alert.reported_down, alert.reported_at) == (
        3,
        True,
        WHEN,
    )
    assert backend.alert_state == alert

    group = Group.objects.get(pk=pks["group"])
    permission = group.permissions.get()
    assert permission.pk == pks["permission"]
    assert permission.codename == "view_backend"
    assert permission.content_type.app_label == "catalog"
    assert permission.content_type == ContentType.objects.get_for_model(Backend)
    assert not ContentType.objects.filter(
        app_label="apiproxy", model="backend"
    ).exists()
    assert user.has_perm("catalog.view_backend")


@pytest.mark.django_db
def test_the_models_need_no_new_migration() -> None:
    # makemigrations --check exits (SystemExit) when a model and its migrations
    # disagree, e.g. a moved model whose state lost an option.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
