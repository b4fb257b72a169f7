"""Every login form is throttled the same way: the admin login is sent through
allauth (portal/admin.py), so ACCOUNT_RATE_LIMITS' login_failed applies to it.

Runs against whichever cache settings configure: Redis with REDIS_URL (as in
`make test`), the in-process cache without it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from accounts.models import User
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

TOO_MANY = "Too many failed login attempts"
# The failed-login window of ACCOUNT_RATE_LIMITS (5 per account per 5 minutes).
WINDOW = timedelta(minutes=5)


def login_form_of(client: Client, entry: str) -> str:
    """The URL of the form a visitor of `entry` ends up typing a password into."""
    response = client.get(entry)
    if response.status_code == 302:
        return response["Location"]
    assert response.status_code == 200
    return entry


def test_the_admin_login_sends_visitors_to_allauth_with_next(client: Client) -> None:
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    # And the admin itself goes the same way, via its own login URL.
    assert client.get("/admin/", follow=True).redirect_chain[-1][0] == (
        "/accounts/login/?next=%2Fadmin%2F"
    )


def test_a_password_posted_to_the_admin_login_logs_nobody_in(
    client: Client, staff: User
) -> None:
    for password in ["wrong", PASSWORD]:
        response = client.post(
            "/admin/login/?next=/admin/",
            {"username": staff.username, "password": password},
        )
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert client.get("/admin/").status_code == 302


def test_staff_end_up_in_the_admin_after_logging_in(
    client: Client, staff: User
) -> None:
    form = login_form_of(client, "/admin/login/?next=/admin/")
    response = client.post(form, {"login": staff.username, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_signed_in_researcher_is_refused_the_admin_login(
    client: Client, alice: User
) -> None:
    client.force_login(alice)
    assert client.get("/admin/login/?next=/admin/").status_code == 403


@pytest.mark.parametrize(
    ("entry", "lands_on"),
    [("/admin/login/?next=/admin/", "/admin/"), ("/accounts/login/", "/")],
    ids=["admin", "accounts"],
)
def test_25_wrong_passwords_lock_the_account_until_the_window_passes(
    client: Client, staff: User, entry: str, lands_on: str
) -> None:
    form = login_form_of(client, entry)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        answers = [
            client.post(form, {"login": staff.username, "password": f"guess{n}"})
            for n in range(25)
        ]
        assert all(answer.status_code in (200, 429) for answer in answers)
        throttled = [
            TOO_MANY in answer.content.decode() or answer.status_code == 429
            for answer in answers
        ]
        # allauth allows 5 failures per account name, then refuses outright.
        assert throttled == [False] * 5 + [True] * 20

        right = client.post(form, {"login": staff.username, "password": PASSWORD})
        assert right.status_code in (200, 429)
        assert TOO_MANY in right.content.decode() or right.status_code == 429
        assert not right.wsgi_request.user.is_authenticated
        assert client.get("/admin/").status_code == 302

    with time_machine.travel(start + WINDOW + timedelta(seconds=1), tick=False):
        right = client.post(form, {"login": staff.username, "password": PASSWORD})
        assert right.status_code == 302
        assert right["Location"] == lands_on
        assert client.get("/admin/").status_code == 200


def test_guessing_across_accounts_from_one_address_is_throttled_too(
    client: Client, staff: User, alice: User, bob: User
) -> None:
    """Two wrong guesses each for five names stay under every account's own
    limit, but the address has used its 10 failures a minute: the operator's
    untouched account is refused from there until the minute is over."""
    names = [alice.username, bob.username, alice.email, bob.email, "nobody"]
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for name in names * 2:
            client.post("/accounts/login/", {"login": name, "password": "nope"})
        right = client.post(
            "/accounts/login/", {"login": staff.username, "password": PASSWORD}
        )
        assert TOO_MANY in right.content.decode() or right.status_code == 429
        assert not right.wsgi_request.user.is_authenticated
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        right = client.post(
            "/accounts/login/", {"login": staff.username, "password": PASSWORD}
        )
        assert right.status_code == 302
