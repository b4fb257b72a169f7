"""Service classes: the shared pool for everyone, the dedicated pool for
groups that hold the performance class."""

from __future__ import annotations

import openai
import pytest
from django.contrib.auth.models import Group

from apiproxy.catalog import catalog
from apiproxy.limits import limit_tables
from catalog.models import Backend, GroupLimits
from tests.fakebackend import FakeBackend
from tests.fixtures_proxy import ProxyRig, model_register

MESSAGES = [{"role": "user", "content": "hi"}]


def grant_dedicated(proxy: ProxyRig) -> None:
    group = Group.objects.create(name="hpc-power-users")
    GroupLimits.objects.create(group=group, dedicated_access=True)
    proxy.user.groups.add(group)
    from accounts.services import apikey_cache_invalidate

    apikey_cache_invalidate()
    limit_tables.invalidate()


def dedicated_backend(factory) -> FakeBackend:  # type: ignore[no-untyped-def]
    backend: FakeBackend = factory()
    model_register(backend, name="dedicated", pool="dedicated")
    return backend


def test_shared_users_stay_off_the_dedicated_pool(
    proxy: ProxyRig, fake_backend_factory
) -> None:
    dedicated = dedicated_backend(fake_backend_factory)
    for _ in range(3):
        proxy.openai().chat.completions.create(model="fake-chat", messages=MESSAGES)
    assert len(proxy.backend.requests("/v1/chat/completions")) == 3
    assert not dedicated.requests("/v1/chat/completions")


def test_members_of_the_dedicated_class_go_to_dedicated_backends(
    proxy: ProxyRig, fake_backend_factory, settings
) -> None:
    settings.LIMITS_REFRESH_SECONDS = 0
    dedicated = dedicated_backend(fake_backend_factory)
    grant_dedicated(proxy)
    for _ in range(3):
        proxy.openai().chat.completions.create(model="fake-chat", messages=MESSAGES)
    assert len(dedicated.requests("/v1/chat/completions")) == 3


def test_a_dedicated_only_model_needs_the_class(
    proxy: ProxyRig, fake_backend_factory, settings
) -> None:
    settings.LIMITS_REFRESH_SECONDS = 0
    dedicated_backend(fake_backend_factory)
    # A class users may ask for holds the dedicated pool: the refusal says how.
    GroupLimits.objects.create(
        group=Group.objects.create(name="performance"),
        dedicated_access=True,
        requestable=True,
    )
    Backend.objects.filter(pool="shared").update(enabled=False)
    catalog.invalidate()
    client = proxy.openai()
    assert "fake-chat" not in {m.id for m in client.models.list()}
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="fake-chat", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    assert "Settings > Access" in caught.value.message
    grant_dedicated(proxy)
    assert client.chat.completions.create(model="fake-chat", messages=MESSAGES).choices
