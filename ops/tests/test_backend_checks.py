"""Backend health checks: out of rotation and back, and one e-mail per
transition however many checks fail or run at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from accounts.models import User
from catalog.models import Backend
from ops.models import BackendAlertState
from ops.services import backend_check_all, backend_check_record
from ops.tasks import check_backends
from tests.factories import backend_make, user_make
from tests.fakebackend import FakeBackend
from tests.fixtures_proxy import ProxyRig, model_register


@pytest.fixture
def alert_after_two(settings: Any) -> None:
    settings.BACKEND_ALERT_AFTER = 2
    settings.ALERT_EMAILS = []


@pytest.mark.django_db
def test_staff_get_one_email_when_a_backend_goes_down_and_one_when_it_returns(
    fake_backend: FakeBackend,
    staff: User,
    mailoutbox: list[Any],
    alert_after_two: None,
) -> None:
    user_make(username="retired", is_staff=True, is_active=False)
    backend = model_register(fake_backend, name="gpu01")
    fake_backend.stop()

    (first,) = backend_check_all()
    backend.refresh_from_db()
    # Out of rotation at the first failure; staff are not paged for one.
    assert (first.ok, backend.healthy, first.failed_checks) == (False, False, 1)
    assert backend.last_error == "Connection refused or host unreachable"
    assert mailoutbox == []

    (second,) = backend_check_all()
    assert second.alert == "down"
    (down,) = mailoutbox
    assert down.subject == "[Portico] Backend gpu01 is down"
    assert down.to == [staff.email]
    assert "failed 2 health checks in a row" in down.body
    assert "Connection refused" in down.body

    for _ in range(3):
        backend_check_all()
    assert len(mailoutbox) == 1

    fake_backend.start()
    (back,) = backend_check_all()
    backend.refresh_from_db()
    assert (back.ok, back.alert, backend.healthy) == (True, "up", True)
    assert [m.subject for m in mailoutbox][1] == "[Portico] Backend gpu01 is back"
    backend_check_all()
    assert len(mailoutbox) == 2


@pytest.mark.django_db
def test_a_good_answer_between_failures_starts_the_count_again(
    fake_backend: FakeBackend, staff: User, mailoutbox: list[Any], alert_after_two: None
) -> None:
    model_register(fake_backend)
    for _ in range(3):
        with fake_backend.refusing():
            assert backend_check_all()[0].failed_checks == 1
        assert backend_check_all()[0].ok
    assert mailoutbox == []


@pytest.mark.django_db
def test_a_backend_that_returns_unannounced_sends_nothing(
    staff: User, mailoutbox: list[Any], alert_after_two: None
) -> None:
    backend = backend_make()
    # Discovery by hand marked it unhealthy once; the checks never reported it.
    Backend.objects.filter(pk=backend.pk).update(healthy=False)
    assert backend_check_record(backend=backend, ok=True).alert == ""
    assert mailoutbox == []


@pytest.mark.django_db
def test_alerts_go_to_alert_emails_when_set(
    staff: User, mailoutbox: list[Any], settings: Any
) -> None:
    settings.BACKEND_ALERT_AFTER = 1
    settings.ALERT_EMAILS = ["noc@example.org", "gpu-team@example.org"]
    backend_check_record(backend=backend_make(), ok=False, error="HTTP 500")
    (message,) = mailoutbox
    assert message.to == ["noc@example.org", "gpu-team@example.org"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_checks_announce_a_transition_once(
    staff: User, mailoutbox: list[Any], settings: Any
) -> None:
    settings.BACKEND_ALERT_AFTER = 1
    backend = backend_make()
    BackendAlertState.objects.create(backend=backend)
    start = threading.Barrier(8)

    def check(ok: bool) -> str:
        try:
            start.wait(timeout=10)
            return backend_check_record(backend=backend, ok=ok, error="down").alert
        finally:
            connections.close_all()

    with ThreadPoolExecutor(8) as pool:
        alerts = list(pool.map(check, [False] * 8))
    assert alerts.count("down") == 1 and len(mailoutbox) == 1
    with ThreadPoolExecutor(8) as pool:
        alerts = list(pool.map(check, [True] * 8))
    assert alerts.count("up") == 1 and len(mailoutbox) == 2


def _spread(proxy: ProxyRig, requests: int = 4) -> None:
    """Concurrent requests, so that least-in-flight routing uses every
    backend in rotation. One request first: it reloads the proxy's catalog
    (concurrent ones would use the copy they found while it reloads)."""
    with proxy.http() as client:
        assert client.get("/v1/models").status_code == 200

    def ask(_: int) -> int:
        with proxy.http() as client:
            return client.post(
                "/v1/chat/completions",
                json={
                    "model": "fake-chat",
                    "messages": [{"role": "user", "content": "hi"}],
                },
            ).status_code

    with ThreadPoolExecutor(requests) as pool:
        assert list(pool.map(ask, range(requests))) == [200] * requests


@pytest.mark.django_db(transaction=True)
def test_a_killed_backend_leaves_rotation_and_returns_after_restart(
    proxy: ProxyRig, fake_backend_factory: Any, alert_after_two: None
) -> None:
    second = fake_backend_factory()
    model_register(second, name="second")
    for fake in (proxy.backend, second):
        fake.behaviour.token_delay = 0.05
    _spread(proxy)
    assert second.requests("/v1/chat/completions")  # in rotation to begin with

    second.stop()
    out = StringIO()
    with pytest.raises(CommandError, match="Failing: second"):
        call_command("checkbackends", stdout=out)
    assert "second: failed (1 in a row" in out.getvalue()
    assert "fake: ok" in out.getvalue()
    assert not Backend.objects.get(name="second").healthy

    second.start()  # restarted, but not yet checked: still out of rotation
    second.reset()
    _spread(proxy)
    assert second.requests("/v1/chat/completions") == []

    call_command("checkbackends", stdout=StringIO())
    assert Backend.objects.get(name="second").healthy
    _spread(proxy)
    assert second.requests("/v1/chat/completions")


@pytest.mark.django_db
def test_the_task_checks_every_enabled_backend(fake_backend: FakeBackend) -> None:
    model_register(fake_backend)
    backend_make(name="dead")  # nothing listens on its port
    backend_make(name="off", enabled=False)
    assert check_backends() == 1
    assert not Backend.objects.get(name="dead").healthy
    assert Backend.objects.get(name="off").last_checked_at is None
