"""The operations dashboard: for staff only, with the service's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from apiproxy.slots import slot_key
from ops.models import BackendAlertState
from ops.selectors import dashboard_traffic
from tests.factories import backend_make, model_make, usage_record_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(alice: User, bob: User, time_machine: Any) -> dict[str, Any]:
    # Half past: the records of the last minutes fall in the current hour.
    time_machine.move_to(datetime(2026, 3, 10, 12, 30, tzinfo=UTC))
    now = timezone.now()
    gpu01 = backend_make(name="gpu01")
    model_make(public_id="llama-test", backend=gpu01)
    gpu02 = backend_make(
        name="gpu02", healthy=False, last_error="Connection refused or host unreachable"
    )
    BackendAlertState.objects.create(backend=gpu02, failed_checks=3, reported_down=True)
    for _ in range(3):
        usage_record_make(user=alice, started_at=now - timedelta(minutes=5))
    usage_record_make(user=bob, started_at=now - timedelta(hours=2))
    failed = usage_record_make(
        user=bob,
        started_at=now - timedelta(minutes=1),
        status=502,
        finish_reason="backend_error",
        completion_tokens=0,
    )
    usage_record_make(user=bob, started_at=now - timedelta(days=2), status=500)
    return {"gpu01": gpu01, "failed": failed}


def test_staff_see_backends_traffic_top_users_and_errors(
    client: Client,
    staff: User,
    service: dict[str, Any],
    django_assert_max_num_queries: Any,
) -> None:
    client.force_login(staff)
    with django_assert_max_num_queries(12):
        response = client.get("/admin/dashboard/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Operations dashboard" in page
    assert "gpu01" in page and "healthy" in page
    assert "failing (3 failed checks in a row), staff told it is down" in page
    assert "Connection refused or host unreachable" in page
    assert "llama-test" in page and "0 of 4" in page  # slots from Redis
    # Last 24 hours: five requests (not the one two days old), one error.
    assert "5 requests, 1 error, 70 tokens." in page
    top = response.context["top_users"]
    assert [row["user__username"] for row in top] == ["alice", "bob"]
    assert [r.request_id for r in response.context["recent_errors"]] == [
        service["failed"].request_id
    ]


def test_in_flight_counts_every_process_s_slots(
    client: Client, staff: User, service: dict[str, Any], settings: Any
) -> None:
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (make test sets it)")
    import redis

    key = slot_key(service["gpu01"].pk, "llama-test")
    client_redis = redis.Redis.from_url(settings.REDIS_URL)
    far = 2_000_000_000_000  # leases held by other processes, far from expiry
    client_redis.zadd(key, {"lease-a": far, "lease-b": far, "expired": 1})
    try:
        client.force_login(staff)
        (row,) = client.get("/admin/dashboard/").context["slots"]
    finally:
        client_redis.delete(key)
    assert (row.model, row.backend, row.in_flight, row.cap) == (
        "llama-test",
        "gpu01",
        2,
        4,
    )


def test_the_traffic_has_one_row_per_hour_for_a_day(
    alice: User, service: dict[str, Any]
) -> None:
    hours = dashboard_traffic(now=timezone.now())
    assert len(hours) == 24
    assert hours[-1].requests == 4 and hours[-1].errors == 1
    assert sum(hour.requests for hour in hours) == 5


@pytest.mark.parametrize("persona", ["charlie", None])
def test_the_dashboard_is_refused_to_everyone_but_staff(
    client: Client, charlie: User, persona: str | None
) -> None:
    if persona:
        client.force_login(charlie)
    response = client.get("/admin/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_admin_index_links_to_the_dashboard(client: Client, staff: User) -> None:
    client.force_login(staff)
    page = client.get("/admin/").content.decode()
    assert 'href="/admin/dashboard/"' in page
