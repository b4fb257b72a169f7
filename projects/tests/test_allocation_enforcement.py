"""Allocations enforced by the real proxy (uvicorn, Redis when REDIS_URL is
set, the fake backend): project keys draw on their project, refusals say why
and when more comes, members working in parallel overshoot by little."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.db.models import Sum
from django.utils import timezone

from accounts.models import User
from catalog.models import Model
from projects.allocation import allocations
from projects.models import Project
from projects.services import (
    allocation_set,
    project_create,
    project_key_create,
    project_member_remove,
    project_member_set,
)
from tests.factories import user_make
from tests.fixtures_proxy import ProxyRig
from usage.models import UsageRecord
from usage.quota import local_counters, quota_limits
from usage.services import quota_set

MESSAGES = [{"role": "user", "content": "Say something."}]  # 2 prompt tokens
PER_REQUEST = 2 + 5  # weighted tokens of one request with max_tokens=5


@pytest.fixture(autouse=True)
def _fresh(fast_password_hashing: None, settings: Any) -> Iterator[None]:
    settings.PROJECT_ALLOCATION_REFRESH_SECONDS = 0.0
    settings.USAGE_QUOTA_REFRESH_SECONDS = 0.0  # personal quotas read afresh
    settings.DEFAULT_USER_RPM = 0  # the drain test runs faster than 120/min
    allocations.invalidate()
    quota_limits.invalidate()
    local_counters.values.clear()
    yield
    allocations.invalidate()
    local_counters.values.clear()


def chat(
    rig: ProxyRig, key: str, *, client: httpx.Client | None = None
) -> httpx.Response:
    return (client or httpx).post(  # type: ignore[no-any-return]
        f"{rig.base_url}/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "fake-chat", "messages": MESSAGES, "max_tokens": 5},
        timeout=20,
    )


def flushed(rig: ProxyRig, response: httpx.Response) -> None:
    """Wait until the request is metered (and so counted)."""
    rig.usage_record(response.headers["x-request-id"])


def project_make(pi: User, **fields: Any) -> Project:
    fields.setdefault("allocation_tokens", 1_000)
    fields.setdefault("ends_on", timezone.localdate() + timedelta(days=300))
    return project_create(name=fields.pop("name", "Climate"), pi=pi, **fields)


def member_key(project: Project, user: User) -> str:
    if user.pk != project.pi_id:
        project_member_set(project=project, user=user)
    return project_key_create(project=project, user=user, name="laptop").raw


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


def test_a_project_key_is_served_with_the_projects_remaining_tokens(
    proxy: ProxyRig,
) -> None:
    project = project_make(proxy.user, allocation_tokens=1_000)
    key = member_key(project, proxy.user)
    # A project key draws on the project only: the owner's own quota, used
    # up here, neither refuses it nor shows in its headers.
    quota_set(user=proxy.user, tokens=0, period="month")
    first = chat(proxy, key)
    assert first.status_code == 200, first.text
    assert first.headers["x-portico-project-remaining-tokens"] == "1000"
    assert "x-portico-quota-remaining-tokens" not in first.headers
    flushed(proxy, first)
    second = chat(proxy, key)
    assert second.headers["x-portico-project-remaining-tokens"] == str(
        1_000 - PER_REQUEST
    )
    record = UsageRecord.objects.get(request_id=first.headers["x-request-id"])
    assert (record.project_id, record.weighted_tokens) == (project.pk, PER_REQUEST)
    assert chat(proxy, proxy.key).status_code == 429  # the personal key: quota


def _drain(rig: ProxyRig, key: str, served: list[float], stop: threading.Event) -> None:
    """One client: requests one after another until the allocation refuses."""
    deadline = time.monotonic() + 60
    with httpx.Client() as client:
        while not stop.is_set() and time.monotonic() < deadline:
            response = chat(rig, key, client=client)
            if response.status_code == 429:
                assert error(response)["code"] == "insufficient_quota"
                return
            assert response.status_code == 200, response.text
            served.append(time.monotonic())


def test_members_draining_one_allocation_overshoot_it_by_about_a_second(
    proxy: ProxyRig, settings: Any
) -> None:
    # The production intervals: the counters lag by up to a second.
    settings.USAGE_FLUSH_SECONDS = flush = 1.0
    settings.PROJECT_ALLOCATION_REFRESH_SECONDS = 1.0
    proxy.backend.behaviour.first_byte_delay = request = 0.05
    allocation = 2_000
    project = project_make(proxy.user, allocation_tokens=allocation)
    users = [proxy.user, user_make(username="bob"), user_make(username="carol")]
    keys = [member_key(project, user) for user in users]
    clients = 2 * len(keys)  # two parallel clients per member
    served: list[float] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_drain, args=(proxy, keys[i % len(keys)], served, stop))
        for i in range(clients)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(70)
    stop.set()
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads)
    time.sleep(flush + 0.5)  # the last flush
    used = UsageRecord.objects.filter(project=project, status=200).aggregate(
        total=Sum("weighted_tokens")
    )["total"]
    assert used == len(served) * PER_REQUEST
    # Why at most this much: a client is admitted while the counter is below
    # the allocation, and the counter has every request that ended more than
    # one flush interval (plus a flusher step) ago. So beyond the crossing
    # request each client can have had at most the requests it runs in that
    # lag, one every `request` seconds at best, plus the one in flight: what
    # the clients use in about a second.
    per_client = math.ceil((flush + 0.25) / request) + 1
    bound = clients * per_client * PER_REQUEST
    overshoot = used - allocation
    print(
        f"allocation {allocation}, used {used}, overshoot {overshoot} "
        f"(bound {bound}), {len(served)} requests by {clients} clients in "
        f"{elapsed:.1f}s: {used / elapsed:.0f} tokens/s"
    )
    assert 0 <= overshoot <= bound


def test_a_removed_members_key_is_refused_within_two_seconds(proxy: ProxyRig) -> None:
    bob = user_make(username="bob")
    project = project_make(proxy.user)
    key = member_key(project, bob)
    assert chat(proxy, key).status_code == 200
    project_member_remove(project=project, user=bob)
    removed = time.monotonic()
    while (status := chat(proxy, key).status_code) == 200:
        assert time.monotonic() - removed < 2.0
        time.sleep(0.05)
    assert status == 401
    assert chat(proxy, member_key(project, proxy.user)).status_code == 200


@pytest.mark.parametrize(
    ("starts", "ends", "says"),
    [(-30, -1, "ended on"), (1, 30, "starts on")],
)
def test_a_project_outside_its_dates_is_refused_but_not_the_personal_key(
    proxy: ProxyRig, starts: int, ends: int, says: str
) -> None:
    today = timezone.localdate()
    project = project_make(proxy.user)
    key = member_key(project, proxy.user)
    Project.objects.filter(pk=project.pk).update(
        starts_on=today + timedelta(days=starts), ends_on=today + timedelta(days=ends)
    )
    refused = chat(proxy, key)
    assert refused.status_code == 403
    assert error(refused)["code"] == "project_inactive"
    assert says in error(refused)["message"]
    assert "'Climate'" in error(refused)["message"]
    assert refused.headers["x-should-retry"] == "false"
    assert chat(proxy, proxy.key).status_code == 200


def test_the_member_cap_refuses_that_member_only(proxy: ProxyRig) -> None:
    project = project_make(proxy.user, member_cap_tokens=PER_REQUEST * 2)
    bob = user_make(username="bob")
    bobs, alices = member_key(project, bob), member_key(project, proxy.user)
    for _ in range(2):
        response = chat(proxy, bobs)
        assert response.status_code == 200
        flushed(proxy, response)
    refused = chat(proxy, bobs)
    assert refused.status_code == 429
    assert error(refused)["code"] == "insufficient_quota"
    assert (
        f"each member may use {PER_REQUEST * 2:,} tokens" in error(refused)["message"]
    )
    assert refused.headers["x-should-retry"] == "false"
    assert refused.headers["x-portico-project-remaining-tokens"] == "0"
    served = chat(proxy, alices)
    assert served.status_code == 200
    assert served.headers["x-portico-project-remaining-tokens"] == str(PER_REQUEST * 2)


def test_an_exhausted_project_leaves_the_personal_key_alone_and_says_when_more_comes(
    proxy: ProxyRig,
) -> None:
    today = timezone.localdate()
    project = project_make(
        proxy.user, allocation_tokens=5, ends_on=today + timedelta(days=40)
    )
    key = member_key(project, proxy.user)
    crossing = chat(proxy, key)  # the request that crosses is served
    assert crossing.status_code == 200
    flushed(proxy, crossing)
    refused = chat(proxy, key)
    assert refused.status_code == 429
    assert error(refused)["type"] == "insufficient_quota"
    assert refused.headers["x-should-retry"] == "false"
    message = error(refused)["message"]
    assert "Project 'Climate' has used its allocation of 5 tokens" in message
    assert f"ends on {today + timedelta(days=40):%Y-%m-%d}" in message
    assert chat(proxy, proxy.key).status_code == 200
    # A model of weight 0 costs the project nothing and is never refused.
    Model.objects.filter(public_id="fake-chat").update(quota_weight=Decimal("0"))
    assert chat(proxy, key).status_code == 200


def test_monthly_instalments_name_the_next_one(proxy: ProxyRig) -> None:
    today = timezone.localdate()
    first_of_next = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    project = project_make(
        proxy.user,
        allocation_tokens=30,
        starts_on=today.replace(day=1),
        ends_on=first_of_next + timedelta(days=50),
        monthly_instalments=True,
    )
    key = member_key(project, proxy.user)
    served = chat(proxy, key)
    assert served.headers["x-portico-project-remaining-tokens"] == "10"  # 30 / 3
    flushed(proxy, served)
    flushed(proxy, chat(proxy, key))  # 14 of 10: the crossing one is served
    refused = chat(proxy, key)
    assert refused.status_code == 429
    assert (
        f"the next instalment comes on {first_of_next:%Y-%m-%d}"
        in (error(refused)["message"])
    )


def test_a_larger_allocation_is_enforced_within_two_seconds(
    proxy: ProxyRig, settings: Any
) -> None:
    settings.PROJECT_ALLOCATION_REFRESH_SECONDS = 1.0  # the default
    project = project_make(proxy.user, allocation_tokens=5)
    key = member_key(project, proxy.user)
    flushed(proxy, chat(proxy, key))
    assert chat(proxy, key).status_code == 429
    allocation_set(project=project, allocation_tokens=1_000, reason="more")
    changed = time.monotonic()
    while (response := chat(proxy, key)).status_code == 429:
        assert time.monotonic() - changed < 2.0
        time.sleep(0.05)
    assert response.headers["x-portico-project-remaining-tokens"] == str(
        1_000 - PER_REQUEST
    )


def test_a_project_created_a_moment_ago_is_served_at_once(
    proxy: ProxyRig, settings: Any
) -> None:
    settings.PROJECT_ALLOCATION_REFRESH_SECONDS = 3600.0
    first = project_make(proxy.user, name="First")
    assert chat(proxy, member_key(first, proxy.user)).status_code == 200
    time.sleep(1.0)  # a cached table's miss reloads it at most once a second
    later = project_make(proxy.user, name="Later", starts_on=timezone.localdate())
    assert chat(proxy, member_key(later, proxy.user)).status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_without_redis_the_counters_live_in_the_process(
    alice: User, bob: User, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from projects import allocation as allocation_module
    from usage.buffer import UsageBuffer
    from usage.outcome import RequestOutcome
    from usage.tests.asyncdb import db

    settings.REDIS_URL = None
    project = await db(project_make, pi=alice, allocation_tokens=100)
    project.member_cap_tokens = 60
    await db(project.save)
    await db(project_member_set, project=project, user=bob)
    seeds = []
    real = allocation_module.allocation_used

    def counting(**kwargs: Any) -> tuple[int, int]:
        seeds.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(allocation_module, "allocation_used", counting)

    async def check(user: User) -> Any:
        return await allocation_module.allocation_check(
            project_id=project.pk, user_id=user.pk, model_weight=1.0
        )

    async def used(user: User, tokens: int) -> None:
        buffer = UsageBuffer()  # the flusher: counters, then the database
        buffer.add(
            RequestOutcome(
                request_id=f"req_{user.pk}_{time.monotonic_ns()}",
                endpoint="chat/completions",
                user_id=user.pk,
                project_id=project.pk,
                model="fake-chat",
                status=200,
                prompt_tokens=tokens,
                usage_source="reported",
            )
        )
        assert await buffer.flush()

    assert (await check(bob)).remaining == 60  # the cap leaves less
    await used(bob, 50)
    assert (await check(bob)).remaining == 10
    await used(bob, 20)
    assert (await check(bob)).refusal == "member_cap"
    state = await check(alice)
    assert (state.refusal, state.remaining) == (None, 30)
    await used(alice, 30)
    assert (await check(alice)).refusal == "exhausted"
    assert len(seeds) == 2  # once per member: the flusher raised the rest


def test_a_project_granting_the_dedicated_class_routes_its_keys_there(
    proxy: ProxyRig, fake_backend_factory: Any, settings: Any
) -> None:
    from apiproxy.tests.test_service_classes import MESSAGES, dedicated_backend

    settings.LIMITS_REFRESH_SECONDS = 0
    dedicated = dedicated_backend(fake_backend_factory)
    project = project_make(proxy.user, dedicated=True)
    key = member_key(project, proxy.user)
    from openai import OpenAI

    OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0).chat.completions.create(
        model="fake-chat", messages=MESSAGES
    )
    assert len(dedicated.requests("/v1/chat/completions")) == 1
    # The same user's personal key stays in the shared pool.
    proxy.openai().chat.completions.create(model="fake-chat", messages=MESSAGES)
    assert len(dedicated.requests("/v1/chat/completions")) == 1
