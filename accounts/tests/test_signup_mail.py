"""The first sign-up where no mail is sent: mail names the portal, the page
says where the link is (and shows it in development), and the link can be
sent again within allauth's own limits."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.mail import EmailMessage
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from portal.devrun import mail_describe
from portal.mailconsole import BANNER, EmailBackend
from tests.factories import PASSWORD

SIGNUP = {
    "email": "dora@example.org",
    "username": "dora",
    "password1": PASSWORD,
    "password2": PASSWORD,
}


def _link(body: str) -> str:
    found = re.search(r"https?://\S+/accounts/confirm-email/\S+", body)
    assert found, body
    return found.group(0)


@pytest.mark.django_db
def test_the_verification_mail_names_the_portal_not_the_host(
    client: Client, settings: Any
) -> None:
    settings.SITE_NAME = "Portico"
    client.post(reverse("account_signup"), SIGNUP)
    message = mail.outbox[-1]
    assert message.subject.startswith("[Portico] ")
    assert "Hello from Portico!" in message.body
    assert "Hello from testserver" not in message.body


@pytest.mark.django_db
def test_in_development_the_page_shows_the_link_that_verifies_the_account(
    client: Client, settings: Any
) -> None:
    settings.MAIL_SHOWN_ON_PAGE = True
    response = client.post(reverse("account_signup"), SIGNUP, follow=True)
    link = _link(mail.outbox[-1].body)
    page = response.content.decode()
    assert "mail is not sent" in page
    assert f'href="{link}"' in page
    client.post(link.split("testserver", 1)[1], follow=True)
    assert EmailAddress.objects.get(email=SIGNUP["email"]).verified


@pytest.mark.django_db
def test_without_the_development_flag_the_link_stays_off_the_page(
    client: Client, settings: Any
) -> None:
    settings.MAIL_SHOWN_ON_PAGE = False
    response = client.post(reverse("account_signup"), SIGNUP, follow=True)
    page = response.content.decode()
    assert "confirm-email" not in page
    assert "server's log" in page  # EMAIL_HOST is unset here


@pytest.mark.django_db
def test_a_mail_server_keeps_the_link_off_the_page_even_with_the_flag(
    client: Client, settings: Any
) -> None:
    settings.MAIL_SHOWN_ON_PAGE = True
    settings.EMAIL_HOST = "smtp.example.org"
    response = client.post(reverse("account_signup"), SIGNUP, follow=True)
    page = response.content.decode()
    assert "confirm-email" not in page
    assert "spam folder" in page


@pytest.mark.django_db
def test_the_link_can_be_sent_again_within_allauths_limit(client: Client) -> None:
    client.post(reverse("account_signup"), SIGNUP)
    assert len(mail.outbox) == 1
    resend = reverse("account_verification_resend")

    response = client.post(resend, follow=True)
    assert len(mail.outbox) == 1  # allauth's confirm_email cooldown
    assert "still works" in response.content.decode()

    with time_machine.travel(timezone.now() + timedelta(minutes=4)):
        response = client.post(resend, follow=True)
    assert len(mail.outbox) == 2
    assert response.redirect_chain[-1][0] == reverse("account_email_verification_sent")
    client.post(_link(mail.outbox[-1].body).split("testserver", 1)[1])
    assert EmailAddress.objects.get(email=SIGNUP["email"]).verified


@pytest.mark.django_db
def test_resending_without_a_pending_sign_up_asks_to_sign_in(client: Client) -> None:
    response = client.post(reverse("account_verification_resend"))
    assert response.status_code == 302
    assert response["Location"] == reverse("account_login")
    assert not mail.outbox
    assert client.get(reverse("account_verification_resend")).status_code == 405


def test_console_mail_stands_out_under_a_banner() -> None:
    stream = io.StringIO()
    EmailBackend(stream=stream).send_messages(
        [EmailMessage("Hi", "Body", "a@example.org", ["b@example.org"])]
    )
    text = stream.getvalue()
    assert text.startswith(BANNER) and "not sent" in text and "Body" in text


def test_make_run_says_where_mail_goes(settings: Any) -> None:
    settings.EMAIL_HOST = ""
    settings.MAIL_SHOWN_ON_PAGE = True
    assert "printed in this terminal" in mail_describe()
    assert "shown on the page" in mail_describe()
    settings.EMAIL_HOST = "smtp.example.org"
    assert "smtp.example.org" in mail_describe()


@pytest.mark.browser
def test_a_newcomer_signs_up_and_verifies_in_the_browser(
    portal_server: Any, page: Any, settings: Any
) -> None:
    settings.MAIL_SHOWN_ON_PAGE = True
    base = portal_server.url
    page.goto(base + "/accounts/signup/")
    for name, value in SIGNUP.items():
        page.fill(f"input[name={name}]", value)
    page.click("form button[type=submit]")
    page.wait_for_url("**/accounts/confirm-email/")
    assert "mail is not sent" in page.inner_text("#mail-not-sent")
    assert "Hello from Portico!" in mail.outbox[-1].body

    with time_machine.travel(timezone.now() + timedelta(minutes=4)):
        page.click("#resend-verification")
        page.wait_for_url("**/accounts/confirm-email/")
    assert len(mail.outbox) == 2

    page.click("#verification-link")
    page.wait_for_selector("form button[type=submit]")
    page.click("form button[type=submit]")
    page.wait_for_url(base + "/**")
    assert EmailAddress.objects.get(email=SIGNUP["email"]).verified
    assert User.objects.get(username="dora").is_active
