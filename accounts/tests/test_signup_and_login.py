"""Sign-up, login, logout and password reset through allauth, in each
registration mode."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

SIGNUP = {
    "email": "dora@example.org",
    "username": "dora",
    "password1": PASSWORD,
    "password2": PASSWORD,
}


def signup(client: Client) -> object:
    return client.post(reverse("account_signup"), SIGNUP, follow=True)


def confirm_email_from_outbox(client: Client) -> object:
    body = mail.outbox[-1].body
    link = re.search(r"https?://[^\s]+/accounts/confirm-email/[^\s]+", body)
    assert link, body
    path = "/" + link.group(0).split("/", 3)[3]
    return client.post(path, follow=True)


def test_open_signup_verifies_the_email_and_logs_in(client: Client, settings) -> None:
    settings.REGISTRATION_MODE = "open"
    response = signup(client)
    assert response.status_code == 200
    user = User.objects.get(username="dora")
    assert user.is_active and not user.pending_approval
    assert "confirm" in mail.outbox[-1].subject.lower()
    response = confirm_email_from_outbox(client)
    assert response.wsgi_request.user.is_authenticated
    assert response.wsgi_request.user == user


def test_approval_mode_keeps_new_accounts_waiting_until_staff_approve(
    client: Client, settings, staff: User
) -> None:
    settings.REGISTRATION_MODE = "approval"
    signup(client)
    user = User.objects.get(username="dora")
    assert not user.is_active
    assert user.pending_approval

    response = client.post(
        reverse("account_login"),
        {"login": "dora", "password": PASSWORD},
        follow=True,
    )
    assert not response.wsgi_request.user.is_authenticated
    assert response.redirect_chain[-1][0] == reverse("account_inactive")

    admin = Client()
    admin.force_login(staff)
    response = admin.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "approve_selected", "_selected_action": [user.pk]},
        follow=True,
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.is_active and not user.pending_approval and user.approved_at

    # Approved, the address still has to be verified before the first login.
    client.post(reverse("account_login"), {"login": "dora", "password": PASSWORD})
    response = confirm_email_from_outbox(client)
    assert response.wsgi_request.user == user
    assert client.get(reverse("home")).status_code == 200


def test_closed_mode_refuses_sign_up(client: Client, settings) -> None:
    settings.REGISTRATION_MODE = "closed"
    response = client.get(reverse("account_signup"))
    assert b"Sign Up Closed" in response.content
    client.post(reverse("account_signup"), SIGNUP)
    assert not User.objects.filter(username="dora").exists()


def test_login_and_logout(client: Client, alice: User) -> None:
    assert client.get(reverse("home")).status_code == 302
    response = client.post(
        reverse("account_login"), {"login": "alice", "password": PASSWORD}
    )
    assert response.status_code == 302
    page = client.get(reverse("home"))
    assert page.status_code == 200
    assert b"Log out" in page.content
    assert b'data-nav="admin"' not in page.content
    client.post(reverse("account_logout"))
    assert client.get(reverse("home")).status_code == 302


def test_login_accepts_the_email_address_too(client: Client, alice: User) -> None:
    response = client.post(
        reverse("account_login"), {"login": "alice@example.org", "password": PASSWORD}
    )
    assert response.status_code == 302


def test_a_wrong_password_is_refused(client: Client, alice: User) -> None:
    response = client.post(
        reverse("account_login"), {"login": "alice", "password": "nope"}
    )
    assert response.status_code == 200
    assert not response.wsgi_request.user.is_authenticated


def test_password_reset_sends_a_working_link(client: Client, alice: User) -> None:
    client.post(reverse("account_reset_password"), {"email": "alice@example.org"})
    assert len(mail.outbox) == 1
    link = re.search(
        r"https?://[^\s]+/accounts/password/reset/key/[^\s]+", mail.outbox[0].body
    )
    assert link
    path = "/" + link.group(0).split("/", 3)[3]
    form_page = client.get(path, follow=True)
    new_password = "another long passphrase 42"
    client.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else path,
        {"password1": new_password, "password2": new_password},
    )
    alice.refresh_from_db()
    assert alice.check_password(new_password)
