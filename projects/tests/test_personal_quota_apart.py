"""A project's use is the project's: its keys never draw on, or use up, their
owner's own quota, whatever the counters or the database say."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from openai import OpenAI

from projects.services import project_create, project_key_create
from tests.fixtures_proxy import ProxyRig
from usage.periods import window_of
from usage.rollups import usage_rollup
from usage.selectors import quota_used, quota_used_by_user
from usage.services import quota_set

MESSAGES = [{"role": "user", "content": "Say something."}]  # 2 prompt tokens


def test_a_project_key_leaves_its_owners_quota_untouched(
    proxy: ProxyRig, settings: Any
) -> None:
    from usage.quota import quota_limits

    settings.USAGE_QUOTA_REFRESH_SECONDS = 0.0
    quota_set(user=proxy.user, tokens=20, period="day")
    quota_limits.invalidate()
    project = project_create(
        name="Climate",
        pi=proxy.user,
        allocation_tokens=10_000,
        ends_on=timezone.localdate() + timedelta(days=30),
    )
    key = project_key_create(project=project, user=proxy.user, name="lab").raw
    client = OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0)
    for _ in range(4):  # 4 x (2 + 5) = 28 tokens, more than the personal 20
        raw = client.chat.completions.with_raw_response.create(
            model="fake-chat", messages=MESSAGES, max_tokens=5
        )
        record = proxy.usage_record(raw.headers["x-request-id"])
        assert record.project_id == project.pk
    personal = proxy.openai().chat.completions.with_raw_response.create(
        model="fake-chat", messages=MESSAGES, max_tokens=5
    )
    assert int(personal.headers["x-portico-quota-remaining-tokens"]) == 20
    start, end = window_of("day", timezone.now())
    proxy.usage_record(personal.headers["x-request-id"])
    assert quota_used(user_id=proxy.user.pk, start=start, end=end) == 7
    # Rolled up, the figure stays the user's own.
    usage_rollup()
    assert quota_used(user_id=proxy.user.pk, start=start, end=end) == 7
    assert quota_used_by_user(start=start, end=end) == {proxy.user.pk: 7}
