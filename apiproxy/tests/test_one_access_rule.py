"""Every place that offers or admits a model agrees, because all ask the one
access rule (catalog.access): the chat's picker, the key form's allowlist,
GET /v1/models and /v1/models/{id}, and a chat request through the API door
and through the browser door.

The case that once disagreed: a model served only by a dedicated backend was
offered to a shared-pool user in the picker and the key form, who then got a
refusal from the proxy.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from django.contrib.auth.models import Group

from accounts.selectors import model_choices
from accounts.services import apikey_cache_invalidate, apikey_create
from apiproxy.catalog import catalog
from apiproxy.limits import limit_tables
from catalog.models import GroupLimits
from chat.selectors import chat_model_list
from chat.services import conversation_create
from chat.stream import STREAM_PATH
from chat.tests.conftest import session_cookies
from tests.fakebackend import FakeBackend
from tests.fixtures_proxy import ProxyRig, model_register

MESSAGES = [{"role": "user", "content": "hi"}]
DEDICATED_ONLY = "gpu-big"


@pytest.fixture
def dedicated_only(proxy: ProxyRig, fake_backend_factory: Any, settings: Any) -> None:
    """`gpu-big` is served by a dedicated backend alone; `fake-chat` by the
    shared one. A class users may ask to join holds the dedicated pool."""
    settings.LIMITS_REFRESH_SECONDS = 0
    backend: FakeBackend = fake_backend_factory()
    backend.behaviour.models = [DEDICATED_ONLY]
    model_register(backend, name="dedicated", pool="dedicated")
    GroupLimits.objects.create(
        group=Group.objects.create(name="performance"),
        dedicated_access=True,
        requestable=True,
    )
    limit_tables.invalidate()


def _join_dedicated_class(proxy: ProxyRig) -> None:
    proxy.user.groups.add(Group.objects.get(name="performance"))
    apikey_cache_invalidate()
    limit_tables.invalidate()
    catalog.invalidate()


def _key_form_choices(proxy: ProxyRig) -> list[str]:
    return model_choices(user=proxy.user)


def _picker(proxy: ProxyRig) -> list[str]:
    return [model.public_id for model in chat_model_list(user=proxy.user)]


def _what_every_door_says(proxy: ProxyRig) -> dict[str, Any]:
    client = proxy.openai()
    http = proxy.http()
    try:
        retrieve = http.get(f"/v1/models/{DEDICATED_ONLY}").status_code
        chat = http.post(
            "/v1/chat/completions",
            json={"model": DEDICATED_ONLY, "messages": MESSAGES},
        ).status_code
    finally:
        http.close()
    return {
        "picker": DEDICATED_ONLY in _picker(proxy),
        "key form": DEDICATED_ONLY in _key_form_choices(proxy),
        "list": DEDICATED_ONLY in {m.id for m in client.models.list()},
        "retrieve": retrieve,
        "chat": chat,
    }


def test_a_shared_pool_user_is_offered_nothing_the_proxy_would_refuse(
    proxy: ProxyRig, dedicated_only: None
) -> None:
    assert _what_every_door_says(proxy) == {
        "picker": False,
        "key form": False,
        "list": False,
        "retrieve": 404,
        "chat": 404,
    }
    # Shared models are offered everywhere all the same.
    assert "fake-chat" in _picker(proxy)
    assert "fake-chat" in _key_form_choices(proxy)


def test_the_refusal_says_how_to_ask_only_for_the_model_named(
    proxy: ProxyRig, dedicated_only: None
) -> None:
    client = proxy.openai()
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model=DEDICATED_ONLY, messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    assert "Settings > Access" in caught.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert "Settings > Access" not in missing.value.message
    # The message names no model but the one asked for.
    assert "fake-chat" not in caught.value.message


def test_a_dedicated_user_is_offered_and_served_it_everywhere(
    proxy: ProxyRig, dedicated_only: None
) -> None:
    _join_dedicated_class(proxy)
    assert _what_every_door_says(proxy) == {
        "picker": True,
        "key form": True,
        "list": True,
        "retrieve": 200,
        "chat": 200,
    }


@pytest.mark.parametrize("dedicated", [False, True], ids=["shared", "dedicated"])
def test_the_browser_door_agrees_with_the_picker(
    proxy: ProxyRig, dedicated_only: None, dedicated: bool
) -> None:
    """The chat's own streaming call serves exactly what its picker shows."""
    if dedicated:
        _join_dedicated_class(proxy)
    conversation = conversation_create(user=proxy.user, model=DEDICATED_ONLY)
    cookies = session_cookies(proxy.user)
    response = httpx.post(
        f"{proxy.server.url}/{STREAM_PATH.lstrip('/')}",
        json={"conversation": conversation.pk, "content": "hi"},
        cookies=cookies,
        headers={"x-csrftoken": cookies["csrftoken"]},
        timeout=20,
    )
    offered = DEDICATED_ONLY in _picker(proxy)
    assert offered is dedicated
    assert (response.status_code == 200) is offered, response.text


def test_a_key_limited_to_some_models_sees_and_uses_only_those(
    proxy: ProxyRig,
) -> None:
    issued = apikey_create(
        user=proxy.user, name="embed only", allowed_models=["fake-embed"]
    )
    client = openai.OpenAI(
        base_url=proxy.base_url, api_key=issued.raw, max_retries=0, timeout=20
    )
    assert {m.id for m in client.models.list()} == {"fake-embed"}
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="fake-chat", messages=MESSAGES)
    # The same 404 as for a missing model, with the key's own list: nothing
    # the user could not see anyway.
    assert caught.value.code == "model_not_found"
    assert caught.value.message.endswith("This API key may use only: fake-embed.")
    # The user's other keys and the picker are not narrowed by it.
    assert "fake-chat" in _picker(proxy)
