"""Settings > Projects in Chromium, end to end through the real proxy: a PI
invites a member by username, the member accepts in their own browser, makes
a project key on the project page and uses it with the openai SDK; the PI then
sees that use by member, downloads the CSV and opens the monthly report."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import User
from projects.models import ProjectMembership
from projects.services import project_create
from tests.factories import PASSWORD, user_make
from tests.fixtures_proxy import ProxyRig
from usage.models import UsageRecord

pytestmark = pytest.mark.browser


class Browsers:
    """One browser context per person, each failing the test on a page error."""

    def __init__(self, chromium: Any, base_url: str) -> None:
        self.chromium, self.base_url = chromium, base_url
        self.contexts: list[Any] = []
        self.errors: list[str] = []

    def signed_in(self, user: User) -> Any:
        context = self.chromium.new_context(
            base_url=self.base_url, accept_downloads=True
        )
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.goto("/accounts/login/")
        page.fill("input[name=login]", user.get_username())
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(self.base_url + "/**")
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def browsers(proxy: ProxyRig, chromium: Any) -> Iterator[Browsers]:
    opened = Browsers(chromium, proxy.server.url)
    yield opened
    opened.close()
    assert not opened.errors, f"JavaScript errors on the page: {opened.errors}"


def _project_usage(project_id: int, user: User, timeout: float = 10.0) -> UsageRecord:
    """The member's record, once the meter's buffer has flushed it (the
    proxy rig flushes every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = UsageRecord.objects.filter(project_id=project_id, user=user).first()
        if record is not None:
            return record
        time.sleep(0.05)
    raise AssertionError(f"no project usage for {user} after {timeout}s")


def test_invite_accept_key_use_and_report(
    proxy: ProxyRig, browsers: Browsers, tmp_path: Path
) -> None:
    from openai import OpenAI

    pi = proxy.user
    member = user_make(username="bob")
    today = timezone.localdate()
    project = project_create(
        name="Glaciers",
        pi=pi,
        allocation_tokens=1_000_000,
        starts_on=today - timedelta(days=3),
        ends_on=today + timedelta(days=60),
    )
    page_url = f"/settings/projects/{project.pk}/"

    pi_page = browsers.signed_in(pi)
    pi_page.goto("/settings/projects/")
    pi_page.get_by_role("link", name="Glaciers").click()
    pi_page.fill("input[name=who]", "bob")
    pi_page.select_option("select[name=role]", "member")
    pi_page.get_by_role("button", name="Invite").click()
    link = pi_page.get_by_test_id("invitation-link").inner_text().strip()
    assert "/projects/invitations/" in link

    member_page = browsers.signed_in(member)
    member_page.goto(link)
    assert "Join Glaciers?" in member_page.content()
    member_page.get_by_role("button", name="Accept").click()
    member_page.wait_for_url(proxy.server.url + page_url)
    assert ProjectMembership.objects.get(project=project, user=member).role == "member"
    member_page.fill("input[name=name]", "notebook")
    member_page.get_by_role("button", name="Create project key").click()
    raw_key = member_page.get_by_test_id("new-key").inner_text().strip()
    assert raw_key.startswith("sk-")

    client = OpenAI(base_url=proxy.base_url, api_key=raw_key, max_retries=0, timeout=20)
    assert "fake-chat" in {model.id for model in client.models.list()}
    answer = client.chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "Hello"}]
    )
    assert answer.choices[0].message.content
    record = _project_usage(project.pk, member)
    assert record.weighted_tokens > 0 and record.key.project_id == project.pk

    member_page.goto(page_url)
    assert "fake-chat" in member_page.locator("table.by-model").inner_text()
    assert member_page.locator("table.by-member").count() == 0

    pi_page.goto(page_url)
    row = pi_page.locator('tr[data-usage-member="bob"]')
    assert f"{record.weighted_tokens:,}" in row.inner_text()
    remaining = pi_page.get_by_test_id("remaining").inner_text()
    assert remaining == f"{1_000_000 - record.weighted_tokens:,}"
    assert pi_page.locator("svg.burndown-chart polyline.used").count() == 1

    with pi_page.expect_download() as download:
        pi_page.get_by_role("link", name="Download CSV").click()
    saved = tmp_path / "project.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    bob = next(r for r in rows if r["by"] == "member" and r["name"] == "bob")
    assert bob["weighted_tokens"] == str(record.weighted_tokens)
    assert any(r["by"] == "model" and r["name"] == "fake-chat" for r in rows)

    pi_page.get_by_role("link", name="Monthly report").click()
    pi_page.wait_for_url("**/report/?month=*")
    report = pi_page.locator("table.by-member").inner_text()
    assert "bob" in report and f"{record.weighted_tokens:,}" in report
    assert "granted" in pi_page.locator("table.history").inner_text()
    pi_page.emulate_media(media="print")
    assert not pi_page.locator(".topbar").is_visible()
    assert not pi_page.locator(".report-tools").is_visible()
