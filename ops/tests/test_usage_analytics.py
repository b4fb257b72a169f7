"""Staff analytics: the rollup fills the analytics tables exactly once, the
percentiles read from their histogram agree with the raw records to within a
bucket, refusals stay apart from served requests, the breakdowns join users
to groups, affiliations and service classes, and the page is for staff who
hold `ops.view_dashboard` only."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone

from accounts.models import User
from catalog.models import GroupLimits
from ops.analytics import (
    DEDICATED,
    NO_GROUP,
    NO_PROJECT,
    NOT_ASSERTED,
    SHARED,
    analytics_read,
)
from ops.usagefigures import ttft_bucket_of
from projects.models import Project
from tests.factories import backend_make, usage_record_make, user_make
from usage.models import (
    TTFT_BOUNDS_MS,
    TTFT_BUCKETS,
    DailyModelAnalytics,
    DailyUsage,
    DailyUserAnalytics,
    UsageRecord,
)
from usage.rollups import usage_rollup, usage_rollup_rebuild

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 9, 15, tzinfo=UTC)
DAY = date(2026, 3, 10)
PAGE = "/admin/analytics/"
COLUMNS = (
    "served",
    "served_browser",
    "refused_429",
    "refused_503",
    "refused_other",
    "failed",
    "prompt_tokens",
    "completion_tokens",
    "weighted_tokens",
    *TTFT_BUCKETS,
)


def project_make(pi: User, name: str = "Climate", **fields: Any) -> Project:
    fields.setdefault("allocation_tokens", 1_000_000)
    fields.setdefault("ends_on", date(2027, 1, 1))
    fields.setdefault("starts_on", date(2026, 1, 1))
    return Project.objects.create(name=name, pi=pi, **fields)


def snapshot() -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    return {
        "user": {
            (row.day, row.user_id, row.project_id): tuple(
                getattr(row, name) for name in COLUMNS
            )
            for row in DailyUserAnalytics.objects.all()
        },
        "model": {
            (row.day, row.model, row.backend_id): tuple(
                getattr(row, name) for name in COLUMNS
            )
            for row in DailyModelAnalytics.objects.all()
        },
    }


def mixed(alice: User, bob: User, project: Project, backend_id: int) -> None:
    """Served (API and chat, streamed and not), every kind of refusal and a
    failure, over two models, a project and two days."""
    stream = {"stream": True, "backend_id": backend_id}
    usage_record_make(user=alice, started_at=T0, ttft_ms=40, **stream)
    usage_record_make(
        user=alice, started_at=T0, ttft_ms=400, client="browser", **stream
    )
    usage_record_make(user=alice, started_at=T0, ttft_ms=900, backend_id=backend_id)
    usage_record_make(
        user=alice, started_at=T0, project_id=project.pk, ttft_ms=1200, **stream
    )
    refused = {"prompt_tokens": 0, "completion_tokens": 0, "ttft_ms": None}
    usage_record_make(user=alice, started_at=T0, status=429, **refused)
    usage_record_make(user=bob, started_at=T0, status=503, **refused)
    usage_record_make(user=bob, started_at=T0, status=503, model="big", **refused)
    usage_record_make(user=bob, started_at=T0, status=400, **refused)
    usage_record_make(
        user=bob, started_at=T0, status=502, finish_reason="backend_error", **stream
    )
    usage_record_make(
        user=bob,
        started_at=T0 + timedelta(days=1),
        model="big",
        ttft_ms=70_000,
        weight=2.0,
        **stream,
    )


@pytest.fixture
def project(alice: User) -> Project:
    return project_make(alice)


@pytest.fixture
def backend_id() -> int:
    return backend_make(name="gpu01").pk


def test_the_rollup_fills_the_analytics_once_however_often_it_runs(
    alice: User, bob: User, project: Project, backend_id: int
) -> None:
    mixed(alice, bob, project, backend_id)
    assert usage_rollup().records == 10
    first = snapshot()
    assert usage_rollup().records == 0
    assert snapshot() == first

    rows = {
        key: dict(zip(COLUMNS, values, strict=True))
        for key, values in first["user"].items()
    }
    own = rows[(DAY, alice.pk, 0)]
    assert (own["served"], own["served_browser"], own["refused_429"]) == (3, 1, 1)
    # Streamed and served only: the non-streamed answer (900 ms) has no TTFT.
    assert own[TTFT_BUCKETS[ttft_bucket_of(40)]] == 1
    assert own[TTFT_BUCKETS[ttft_bucket_of(400)]] == 1
    assert own[TTFT_BUCKETS[ttft_bucket_of(900)]] == 0
    billed = rows[(DAY, alice.pk, project.pk)]
    assert billed["served"] == 1 and billed[TTFT_BUCKETS[ttft_bucket_of(1200)]] == 1
    bobs = rows[(DAY, bob.pk, 0)]
    assert (
        bobs["served"],
        bobs["refused_503"],
        bobs["refused_other"],
        bobs["failed"],
    ) == (0, 2, 1, 1)
    assert sum(bobs[name] for name in TTFT_BUCKETS) == 0  # a failure has no TTFT
    assert rows[(DAY + timedelta(days=1), bob.pk, 0)]["weighted_tokens"] == 30

    models = {
        key: dict(zip(COLUMNS, values, strict=True))
        for key, values in first["model"].items()
    }
    # Refusals before routing have no backend (0); served requests have theirs.
    assert models[(DAY, "fake-chat", backend_id)]["served"] == 4
    assert models[(DAY, "fake-chat", 0)]["refused_429"] == 1
    assert models[(DAY, "big", 0)]["refused_503"] == 1

    # Both tables count every record once, and agree with the daily totals.
    for table in ("user", "model"):
        requests = sum(
            sum(values[:1]) + sum(values[2:6]) for values in first[table].values()
        )
        assert requests == UsageRecord.objects.count()
        tokens = sum(
            values[COLUMNS.index("weighted_tokens")] for values in first[table].values()
        )
        assert tokens == sum(d.weighted_tokens for d in DailyUsage.objects.all())


def test_a_late_record_and_a_rebuild_leave_the_same_figures_as_one_run(
    alice: User, bob: User, project: Project, backend_id: int
) -> None:
    mixed(alice, bob, project, backend_id)
    usage_rollup()
    usage_record_make(user=alice, started_at=T0, ttft_ms=40, stream=True)
    usage_rollup()
    incremental = snapshot()
    assert incremental["user"][(DAY, alice.pk, 0)][0] == 4
    DailyUserAnalytics.objects.update(served=999)
    DailyModelAnalytics.objects.filter(model="big").delete()
    usage_rollup_rebuild(since=DAY - timedelta(days=1), until=DAY + timedelta(days=3))
    assert snapshot() == incremental


def exact_percentile(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_from_the_histogram_fall_in_the_records_bucket(
    alice: User, seed: int
) -> None:
    rng = random.Random(seed)
    # Log-normal around ~600 ms with a long tail, as streams' first tokens are.
    values = [min(200_000, int(rng.lognormvariate(6.4, 1.1))) for _ in range(300)]
    for ms in values:
        usage_record_make(user=alice, started_at=T0, ttft_ms=ms, stream=True)
    usage_rollup()
    figures = analytics_read(since=DAY, until=DAY, by="model").models[0].figures
    assert figures.ttft_count == len(values)
    for fraction, estimate in ((0.5, figures.ttft_p50), (0.95, figures.ttft_p95)):
        exact = exact_percentile(values, fraction)
        bucket = ttft_bucket_of(exact)
        low = TTFT_BOUNDS_MS[bucket - 1] if bucket else 0
        high = TTFT_BOUNDS_MS[bucket] if bucket < len(TTFT_BOUNDS_MS) else low
        assert estimate is not None and low <= estimate <= high, (fraction, exact)


def test_refusals_are_kept_apart_and_shared_per_model(
    alice: User, bob: User, project: Project, backend_id: int
) -> None:
    mixed(alice, bob, project, backend_id)
    usage_rollup()
    figures = analytics_read(since=DAY, until=DAY + timedelta(days=1), by="model")
    total = figures.total
    assert total.requests == 10
    assert (total.served, total.served_browser, total.served_api) == (5, 1, 4)
    assert (total.refused_429, total.refused_503, total.refused_other) == (1, 2, 1)
    assert total.failed == 1
    models = {row.label: row for row in figures.models}
    chat = models["fake-chat"].figures
    assert chat.requests == 8
    assert chat.share_429 == pytest.approx(1 / 8)
    assert chat.share_503 == pytest.approx(1 / 8)
    assert chat.short_of_capacity
    big = models["big"].figures
    assert (big.requests, big.share_503) == (2, 0.5)
    assert big.ttft_p95_open  # 70 s is past the last bound but one
    assert {child.label for child in models["fake-chat"].children} == {
        "gpu01",
        "(no backend: refused first)",
    }
    # One day only: the second day's request is left out.
    assert analytics_read(since=DAY, until=DAY, by="model").total.requests == 9


def test_breakdowns_by_project_group_affiliation_and_service_class(
    alice: User, bob: User, charlie: User, project: Project
) -> None:
    researchers = Group.objects.create(name="researchers")
    fast = Group.objects.create(name="fast lane")
    GroupLimits.objects.create(group=fast, dedicated_access=True)
    alice.groups.add(researchers)
    bob.groups.add(researchers, fast)
    SocialAccount.objects.create(
        user=alice,
        provider="uni-saml",
        uid="alice",
        extra_data={
            "urn:oid:1.3.6.1.4.1.5923.1.1.1.9": [
                "member@uni.example",
                "faculty@uni.example",
            ]
        },
    )
    SocialAccount.objects.create(
        user=bob,
        provider="uni-oidc",
        uid="bob",
        extra_data={
            "id_token": {"sub": "bob"},
            "userinfo": {"eduperson_scoped_affiliation": ["student@uni.example"]},
        },
    )
    dedicated = project_make(charlie, name="Fast project", dedicated=True)
    usage_record_make(user=alice, started_at=T0, prompt_tokens=100)
    usage_record_make(user=alice, started_at=T0, project_id=project.pk)
    usage_record_make(user=bob, started_at=T0, prompt_tokens=50)
    usage_record_make(user=charlie, started_at=T0, status=429, project_id=dedicated.pk)
    usage_record_make(user=charlie, started_at=T0)
    usage_rollup()

    def rows(by: str) -> dict[str, tuple[int, int]]:
        figures = analytics_read(since=DAY, until=DAY, by=by)
        assert figures.total.requests == 5
        return {
            row.label: (row.figures.requests, row.figures.served)
            for row in figures.rows
        }

    assert rows("project") == {
        NO_PROJECT: (3, 3),
        "Climate": (1, 1),
        "Fast project": (1, 0),
    }
    # bob is in both groups and counts in each.
    assert rows("group") == {
        "researchers": (3, 3),
        "fast lane": (1, 1),
        NO_GROUP: (2, 1),
    }
    assert rows("affiliation") == {
        "faculty": (2, 2),
        "student": (1, 1),
        NOT_ASSERTED: (2, 1),
    }
    assert rows("service_class") == {DEDICATED: (2, 1), SHARED: (3, 3)}
    assert rows("model") == {"fake-chat": (5, 4)}


# The page: the dashboard's permission, its link, its form.


@pytest.fixture
def dave(db: None) -> User:
    """Staff (can log in to the admin) with no permission at all."""
    return user_make(username="dave", is_staff=True)


def dashboard_permission() -> Permission:
    return Permission.objects.get(
        content_type__app_label="ops", codename="view_dashboard"
    )


def test_staff_without_the_permission_get_403_and_no_link(
    client: Client, dave: User, alice: User
) -> None:
    usage_record_make(user=alice, started_at=timezone.now())
    usage_rollup()
    client.force_login(dave)
    response = client.get(PAGE, {"by": "affiliation"})
    assert response.status_code == 403
    assert "alice" not in response.content.decode()
    assert 'href="/admin/analytics/"' not in client.get("/admin/").content.decode()


def test_staff_with_the_permission_see_the_last_30_days_by_project(
    client: Client, dave: User, alice: User, project: Project
) -> None:
    now = timezone.now()
    usage_record_make(
        user=alice, started_at=now, project_id=project.pk, prompt_tokens=100
    )
    usage_record_make(user=alice, started_at=now - timedelta(days=40))
    usage_record_make(user=alice, started_at=now, status=503, model="big")
    usage_rollup()
    dave.user_permissions.add(dashboard_permission())
    client.force_login(dave)
    response = client.get(PAGE)
    assert response.status_code == 200
    analytics = response.context["analytics"]
    assert analytics.until == timezone.localdate()
    assert (analytics.until - analytics.since).days == 29
    assert analytics.by == "project"
    # By weighted tokens, the most first.
    assert [row.label for row in analytics.rows] == ["Climate", NO_PROJECT]
    assert analytics.total.requests == 2  # the 40-day-old one is out of range
    page = response.content.decode()
    assert "Climate" in page and "ops-down" in page  # "big": 100 % 503
    assert 'href="/admin/analytics/"' in client.get("/admin/").content.decode()


@pytest.mark.parametrize(
    "by", ["project", "group", "affiliation", "model", "service_class"]
)
def test_every_breakdown_renders(
    client: Client, staff: User, alice: User, by: str
) -> None:
    usage_record_make(user=alice, started_at=timezone.now(), stream=True)
    usage_rollup()
    client.force_login(staff)
    response = client.get(PAGE, {"by": by})
    assert response.status_code == 200
    assert response.context["analytics"].total.served == 1


def test_a_range_that_ends_before_it_starts_is_refused(
    client: Client, staff: User
) -> None:
    client.force_login(staff)
    response = client.get(PAGE, {"since": "2026-03-10", "until": "2026-03-01"})
    assert response.status_code == 400
    assert response.context["analytics"] is None
    assert "ends before it starts" in response.content.decode()
    assert client.get(PAGE, {"by": "nonsense"}).status_code == 400
