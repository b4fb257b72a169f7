"""Settings > Projects through the Django test client against PostgreSQL:
each role sees what it should and non-members nothing; invitations accepted,
declined, expired, withdrawn and opened by the wrong account; removing a
member stops their keys; the CSV, the monthly report and the burn-down."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, User
from accounts.tests.conftest import login
from projects.burndown import burndown_compute
from projects.models import ProjectInvitation, ProjectMembership
from projects.selectors import period_usage
from projects.services import (
    allocation_set,
    project_create,
    project_key_create,
    project_member_set,
)
from tests.factories import usage_record_make, user_make
from usage.models import UsageRecord
from usage.periods import local_midnight
from usage.rollups import usage_rollup
from usage.services import usage_records_prune

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate


@pytest.fixture(autouse=True)
def _fast_password_hashing(fast_password_hashing: None) -> None:
    pass


def _at(day: date) -> datetime:
    return local_midnight(day) + timedelta(hours=1)


def _use(project: Any, user: User, *, day: date, tokens: int, model: str) -> None:
    key = ApiKey.objects.filter(project=project, user=user).first()
    if key is None:
        key = project_key_create(project=project, user=user, name="job").key
    usage_record_make(
        user=user,
        started_at=_at(day),
        model=model,
        prompt_tokens=tokens - tokens // 4,
        completion_tokens=tokens // 4,
        key_id=key.pk,
        project_id=project.pk,
    )


@pytest.fixture
def dave(db: None) -> User:
    return user_make(username="dave")


@pytest.fixture
def climate(alice: User, bob: User, charlie: User) -> Any:
    """alice PI, bob manager, charlie member; 17,500 tokens used of 100,000
    in a 30-day window, 7,500 of them in the last 7 days."""
    today = TODAY()
    project = project_create(
        name="Climate",
        pi=alice,
        allocation_tokens=100_000,
        starts_on=today - timedelta(days=9),
        ends_on=today + timedelta(days=20),
    )
    project_member_set(project=project, user=bob, role="manager")
    project_member_set(project=project, user=charlie, role="member")
    _use(
        project, alice, day=today - timedelta(days=8), tokens=10_000, model="big-model"
    )
    for n in range(7):
        _use(
            project,
            charlie,
            day=today - timedelta(days=n),
            tokens=1_000,
            model="small-model",
        )
    _use(project, bob, day=today, tokens=500, model="small-model")
    # Not the project's: alice's own key.
    usage_record_make(user=alice, started_at=_at(today), model="private-model")
    return project


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _page(user: User, project: Any, query: str = "") -> str:
    response = _client(user).get(f"/settings/projects/{project.pk}/{query}")
    assert response.status_code == 200
    return response.content.decode()


def test_the_list_shows_each_project_with_role_remaining_and_end(
    climate: Any, charlie: User, dave: User
) -> None:
    page = _client(charlie).get("/settings/projects/").content.decode()
    assert "Climate" in page and "member" in page
    assert "82,500" in page and "100,000" in page
    assert climate.ends_on.strftime("%Y-%m-%d") in page
    empty = _client(dave).get("/settings/projects/").content.decode()
    assert "Climate" not in empty and "not in any project" in empty


def test_non_members_and_staff_get_404_for_every_project_url(
    climate: Any, dave: User, staff: User
) -> None:
    base = f"/settings/projects/{climate.pk}/"
    for client in (login(Client(), dave), _client(staff)):
        for url in (base, base + "export.csv", base + "report/"):
            assert client.get(url).status_code == 404, url
        for url in (
            base + "invitations/",
            base + f"members/{climate.pi_id}/remove/",
            base + f"members/{climate.pi_id}/role/",
            base + "invitations/1/revoke/",
        ):
            response = client.post(url, {"who": "dave", "role": "member"})
            assert response.status_code == 404, url
    key = login(Client(), dave).post(base + "keys/", {"name": "sneaky"})
    assert key.status_code == 404
    assert ProjectMembership.objects.filter(project=climate).count() == 3
    assert not ApiKey.objects.filter(user=dave).exists()


def test_the_pi_and_managers_see_everyone_members_only_themselves(
    climate: Any, alice: User, bob: User, charlie: User
) -> None:
    for manager in (alice, bob):
        page = _page(manager, climate)
        assert 'data-usage-member="charlie"' in page
        assert 'data-usage-member="alice"' in page
        assert "big-model" in page and "Invite someone" in page
        assert "private-model" not in page
        assert "<svg" in page and 'class="burndown-chart"' in page
    page = _page(charlie, climate)
    assert "82,500" in page  # the project's remaining allocation
    assert "7,000" in page  # charlie's own use
    assert 'data-usage-member="alice"' not in page and "big-model" not in page
    assert "Invite someone" not in page and "burndown-chart" not in page
    assert 'data-usage-member="bob"' not in page and "data-member=" not in page


def test_pages_carry_no_inline_script_or_style(climate: Any, alice: User) -> None:
    for url in ("", "report/"):
        page = _client(alice).get(f"/settings/projects/{climate.pk}/{url}")
        html = page.content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
        assert " style=" not in html and "<style" not in html


def test_the_period_defaults_to_the_window_and_follows_from_and_to(
    climate: Any, alice: User
) -> None:
    today = TODAY()
    usage = period_usage(project=climate, first_day=today, last_day=today)
    assert usage.total.weighted_tokens == 1_500
    narrow = f"?from={today:%Y-%m-%d}&to={today:%Y-%m-%d}"
    page = _page(alice, climate, narrow)
    assert 'data-usage-member="alice"' not in page  # her use was 8 days ago
    assert "<strong>1,500</strong> weighted tokens" in page
    assert "<strong>17,500</strong> weighted tokens" in _page(alice, climate)
    bad = _page(alice, climate, "?from=2027-13-01&to=nonsense")
    assert "<strong>17,500</strong> weighted tokens" in bad


def test_rolled_up_and_pruned_usage_still_counts(climate: Any, alice: User) -> None:
    usage_rollup()
    later = timezone.now() + timedelta(days=settings.USAGE_RETENTION_DAYS + 40)
    assert usage_records_prune(now=later).deleted > 0
    assert not UsageRecord.objects.filter(project=climate).exists()
    _use(climate, alice, day=TODAY(), tokens=100, model="big-model")
    page = _page(alice, climate)
    assert "<strong>17,600</strong> weighted tokens" in page
    assert "82,400" in page


def _csv(client: Client, project: Any, query: str = "") -> list[dict[str, str]]:
    response = client.get(f"/settings/projects/{project.pk}/export.csv{query}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_csv_holds_usage_by_member_and_model(
    climate: Any, alice: User, charlie: User
) -> None:
    rows = _csv(_client(alice), climate)
    members = {r["name"]: r for r in rows if r["by"] == "member"}
    models = {r["name"]: r for r in rows if r["by"] == "model"}
    assert set(members) == {"alice", "bob", "charlie"}
    assert members["charlie"]["weighted_tokens"] == "7000"
    assert members["charlie"]["requests"] == "7"
    assert models["small-model"]["weighted_tokens"] == "7500"
    assert models["big-model"]["prompt_tokens"] == "7500"
    assert rows[0]["project"] == "Climate"
    assert rows[0]["from"] == climate.starts_on.isoformat()
    today = TODAY()
    narrow = _csv(
        _client(alice), climate, f"?from={today:%Y-%m-%d}&to={today:%Y-%m-%d}"
    )
    assert {r["name"] for r in narrow if r["by"] == "member"} == {"bob", "charlie"}
    own = _csv(_client(charlie), climate)
    assert {r["name"] for r in own if r["by"] == "member"} == {"charlie"}
    assert {r["name"] for r in own if r["by"] == "model"} == {"small-model"}


def test_a_project_name_that_looks_like_a_formula_stays_data(alice: User) -> None:
    project = project_create(
        name='=HYPERLINK("http://x","y")',
        pi=alice,
        allocation_tokens=10,
        ends_on=TODAY() + timedelta(days=5),
    )
    _use(project, alice, day=TODAY(), tokens=4, model="@model")
    rows = _csv(_client(alice), project)
    assert rows[0]["project"].startswith("'=")
    assert {r["name"] for r in rows if r["by"] == "model"} == {"'@model"}


def test_the_monthly_report_renders_use_members_models_and_history(
    climate: Any, alice: User, charlie: User
) -> None:
    allocation_set(
        project=climate, allocation_tokens=150_000, changed_by=alice, reason="top-up"
    )
    month = TODAY().replace(day=1)
    response = _client(alice).get(
        f"/settings/projects/{climate.pk}/report/?month={month:%Y-%m}"
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert f"Climate: {month:%B %Y}" in page
    assert "150,000" in page and "top-up" in page and "granted" in page
    assert "data-print" in page and "projects.css" in page
    assert 'class="report-table by-member"' in page and "small-model" in page
    in_month = sum(
        line.totals.weighted_tokens
        for line in period_usage(
            project=climate,
            first_day=month,
            last_day=(month + timedelta(days=32)).replace(day=1) - timedelta(days=1),
        ).by_member
    )
    assert f'data-testid="used-this-month">{in_month:,} weighted tokens' in page
    earlier = _client(alice).get(
        f"/settings/projects/{climate.pk}/report/?month=2001-01"
    )
    assert "No use this month." in earlier.content.decode()
    assert "top-up" not in earlier.content.decode()
    own = (
        _client(charlie)
        .get(f"/settings/projects/{climate.pk}/report/")
        .content.decode()
    )
    assert 'data-member="alice"' not in own and "Your own use only" in own


def test_the_burn_down_date_at_the_last_7_days_rate() -> None:
    first = date(2027, 3, 1)
    daily = {first + timedelta(days=n): 1_000 for n in range(10)}
    runs = burndown_compute(
        daily=daily, first_day=first, end_day=date(2027, 4, 1), today=date(2027, 3, 10),
        limit=15_000,
    )  # fmt: skip
    assert runs.used == 10_000 and runs.rate == 1_000
    assert runs.runs_out_on == date(2027, 3, 15)
    lasts = burndown_compute(
        daily=daily, first_day=first, end_day=date(2027, 4, 1), today=date(2027, 3, 10),
        limit=100_000,
    )  # fmt: skip
    assert lasts.runs_out_on is None and lasts.outlasts
    idle = burndown_compute(
        daily={first: 5}, first_day=first, end_day=date(2027, 4, 1),
        today=date(2027, 3, 20), limit=10,
    )  # fmt: skip
    assert idle.rate == 0 and idle.outlasts
    young = burndown_compute(
        daily={first: 300, first + timedelta(days=1): 300}, first_day=first,
        end_day=date(2027, 4, 1), today=first + timedelta(days=1), limit=1_000,
    )  # fmt: skip
    assert young.rate == 300 and young.runs_out_on == date(2027, 3, 4)
    spent = burndown_compute(
        daily={first: 2_000}, first_day=first, end_day=date(2027, 4, 1),
        today=first, limit=1_000,
    )  # fmt: skip
    assert spent.used_up and spent.remaining == 0 and not spent.outlasts


def test_the_page_shows_the_run_out_date_or_not_at_this_rate(
    climate: Any, alice: User
) -> None:
    page = _page(alice, climate)
    assert 'data-runs-out="outlasts"' in page and "not at this rate" in page
    # 17,500 used, 7,500 in the last 7 days: 2,500 left lasts 3 days.
    allocation_set(project=climate, allocation_tokens=20_000)
    page = _page(alice, climate)
    expected = TODAY() + timedelta(days=3)
    assert f'data-runs-out="{expected:%Y-%m-%d}"' in page
    assert f"{expected:%A} {expected.day} {expected:%B %Y}" in page


def test_monthly_instalments_show_this_months_share(alice: User) -> None:
    today = TODAY()
    project = project_create(
        name="Monthly",
        pi=alice,
        allocation_tokens=3_000,
        starts_on=today.replace(day=1) - timedelta(days=1),
        ends_on=(today.replace(day=1) + timedelta(days=62)).replace(day=1)
        - timedelta(days=1),
        monthly_instalments=True,
    )
    page = _page(alice, project)
    assert "of 1,000 weighted tokens left this month" in page
    assert "next instalment" in page


def _invite(client: Client, project: Any, who: str, role: str = "member") -> str:
    response = client.post(
        f"/settings/projects/{project.pk}/invitations/", {"who": who, "role": role}
    )
    assert response.status_code == 200, response.content.decode()[:3000]
    match = re.search(
        r'data-testid="invitation-link">([^<]+)<', response.content.decode()
    )
    assert match
    return urlsplit(match.group(1)).path


def test_an_invitation_by_username_is_mailed_and_accepted(
    climate: Any, alice: User, dave: User, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        link = _invite(_client(alice), climate, "dave", role="manager")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["dave@example.org"]
    assert link in mail.outbox[0].body and "Climate" in mail.outbox[0].subject
    invitation = ProjectInvitation.objects.get(project=climate)
    assert (
        invitation.user == dave and link.split("/")[-2] not in invitation.token_digest
    )
    assert not ProjectMembership.objects.filter(project=climate, user=dave).exists()
    anonymous = Client().get(link)
    assert anonymous.status_code == 302 and "next=" in anonymous["Location"]
    client = _client(dave)
    page = client.get(link)
    assert page.status_code == 200 and b"Join Climate?" in page.content
    response = client.post(link, {"answer": "accept"})
    assert response.status_code == 302
    assert response["Location"] == f"/settings/projects/{climate.pk}/"
    assert ProjectMembership.objects.get(project=climate, user=dave).role == "manager"
    again = client.get(link)
    assert again.status_code == 410 and b"already accepted" in again.content


def test_an_invitation_opened_by_another_account_is_refused(
    climate: Any, alice: User, dave: User, charlie: User
) -> None:
    link = _invite(_client(alice), climate, "dave")
    for user in (charlie, alice):
        response = _client(user).get(link)
        assert response.status_code == 403 and b"for someone else" in response.content
        assert _client(user).post(link, {"answer": "accept"}).status_code == 403
    assert not ProjectMembership.objects.filter(project=climate, user=dave).exists()


def test_an_email_invitation_needs_that_address_verified(
    climate: Any, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        link = _invite(_client(alice), climate, "Erin@Uni.example")
    assert mail.outbox[0].to == ["Erin@Uni.example"]
    erin = user_make(username="erin", email="erin@home.example")
    address = EmailAddress.objects.create(
        user=erin, email="erin@uni.example", verified=False
    )
    client = _client(erin)
    assert client.get(link).status_code == 403
    address.verified = True
    address.save()
    assert client.post(link, {"answer": "accept"}).status_code == 302
    assert ProjectMembership.objects.get(project=climate, user=erin).role == "member"


def test_declining_leaves_the_project_alone_and_ends_the_link(
    climate: Any, alice: User, dave: User
) -> None:
    link = _invite(_client(alice), climate, "dave")
    client = _client(dave)
    response = client.post(link, {"answer": "decline"})
    assert response.status_code == 302 and response["Location"] == "/settings/projects/"
    assert not ProjectMembership.objects.filter(project=climate, user=dave).exists()
    gone = client.get(link)
    assert gone.status_code == 410 and b"was declined" in gone.content


def test_expired_withdrawn_and_unknown_links_say_so(
    climate: Any, alice: User, dave: User
) -> None:
    link = _invite(_client(alice), climate, "dave")
    client = _client(dave)
    ProjectInvitation.objects.update(expires_at=timezone.now())
    expired = client.get(link)
    assert expired.status_code == 410 and b"has expired" in expired.content
    assert client.post(link, {"answer": "accept"}).status_code == 410
    second = _invite(_client(alice), climate, "dave")  # replaces the first
    assert b"has expired" in client.get(link).content
    invitation = ProjectInvitation.objects.get(expires_at__gt=timezone.now())
    withdraw = f"/settings/projects/{climate.pk}/invitations/{invitation.pk}/revoke/"
    assert _client(alice).post(withdraw).status_code == 302
    withdrawn = client.get(second)
    assert withdrawn.status_code == 410 and b"was withdrawn" in withdrawn.content
    unknown = client.get("/projects/invitations/not-a-token/")
    assert unknown.status_code == 404 and b"not valid" in unknown.content
    assert not ProjectMembership.objects.filter(project=climate, user=dave).exists()


def test_who_may_invite_whom(
    climate: Any, bob: User, charlie: User, dave: User
) -> None:
    url = f"/settings/projects/{climate.pk}/invitations/"
    refused = _client(bob).post(url, {"who": "dave", "role": "manager"})
    assert refused.status_code == 400
    assert (
        _client(charlie).post(url, {"who": "dave", "role": "member"}).status_code == 403
    )
    member = _client(bob).post(url, {"who": "charlie", "role": "member"})
    assert member.status_code == 400 and b"Already a member" in member.content
    nobody = _client(bob).post(url, {"who": "nobody-here", "role": "member"})
    assert (
        nobody.status_code == 400 and b"No account has that username" in nobody.content
    )
    assert not ProjectInvitation.objects.exists()
    _invite(_client(bob), climate, "dave")
    page = _page(bob, climate)
    assert "dave" in page and "Withdraw" in page


def test_removing_a_member_stops_their_project_keys(
    climate: Any, alice: User, bob: User, charlie: User
) -> None:
    key = ApiKey.objects.get(project=climate, user=charlie)
    remove = f"/settings/projects/{climate.pk}/members/{{}}/remove/"
    assert _client(charlie).post(remove.format(bob.pk)).status_code == 403
    assert _client(bob).post(remove.format(alice.pk)).status_code == 403
    response = _client(bob).post(remove.format(charlie.pk), follow=True)
    assert b"1 project key stopped" in response.content
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert not ProjectMembership.objects.filter(project=climate, user=charlie).exists()
    assert _client(charlie).get(f"/settings/projects/{climate.pk}/").status_code == 404
    project_member_set(project=climate, user=charlie)
    assert _client(bob).post(remove.format(bob.pk)).status_code == 403  # a manager
    assert _client(alice).post(remove.format(bob.pk)).status_code == 302
    assert not ProjectMembership.objects.filter(project=climate, user=bob).exists()


def test_only_the_pi_changes_roles(
    climate: Any, alice: User, bob: User, charlie: User
) -> None:
    role = f"/settings/projects/{climate.pk}/members/{{}}/role/"
    assert (
        _client(bob).post(role.format(charlie.pk), {"role": "manager"}).status_code
        == 403
    )
    assert (
        _client(alice).post(role.format(charlie.pk), {"role": "manager"}).status_code
        == 302
    )
    assert (
        ProjectMembership.objects.get(project=climate, user=charlie).role == "manager"
    )
    _client(alice).post(role.format(alice.pk), {"role": "member"})
    assert ProjectMembership.objects.get(project=climate, user=alice).role == "pi"
    assert "Change" in _page(alice, climate) and "Change" not in _page(bob, climate)


def test_a_member_makes_a_project_key_on_the_project_page(
    climate: Any, charlie: User
) -> None:
    client = login(Client(), charlie)
    created = client.post(
        f"/settings/projects/{climate.pk}/keys/", {"name": "notebook"}
    )
    # Post/redirect/get: the key is shown once by a GET; a reload shows it
    # no more and makes no second key.
    assert created.status_code == 302
    response = client.get(created["Location"])
    assert response.status_code == 200
    assert client.get(created["Location"]).status_code == 302
    assert ApiKey.objects.filter(user=charlie, name="notebook").count() == 1
    raw = re.search(
        r'<code id="new-key"[^>]*>([^<]+)</code>', response.content.decode()
    )
    assert raw and raw.group(1).startswith("sk-")
    key = ApiKey.objects.get(user=charlie, name="notebook")
    assert key.project == climate
    assert (
        response["Cache-Control"].startswith("max-age=0")
        or "no-cache" in response["Cache-Control"]
    )
    account = client.get("/settings/account/").content.decode()
    assert 'class="key-project">Climate<' in account
    assert "notebook" in _page(charlie, climate)
    stale = _client(charlie).post(
        f"/settings/projects/{climate.pk}/keys/", {"name": "x"}
    )
    assert stale.status_code == 302 and "reauthenticate" in stale["Location"]


def test_the_monthly_report_downloads_as_a_pdf_with_the_figures(
    db: None, alice: Any
) -> None:
    project = project_create(
        name="Tartu Ülikool glaciers",
        pi=alice,
        allocation_tokens=1_000_000,
        ends_on=timezone.localdate() + timedelta(days=60),
    )
    client = Client()
    client.force_login(alice)
    month = f"{timezone.localdate():%Y-%m}"
    response = client.get(
        f"/settings/projects/{project.pk}/report/", {"month": month, "format": "pdf"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert f"project-{project.pk}-{month}.pdf" in response["Content-Disposition"]
    outsider = Client()
    outsider.force_login(user_make(username="outsider"))
    assert (
        outsider.get(
            f"/settings/projects/{project.pk}/report/", {"format": "pdf"}
        ).status_code
        == 404
    )
