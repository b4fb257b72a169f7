"""The chat page and /api/conversations/: a user's own conversations only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from catalog.models import Model
from chat.models import Conversation
from chat.services import conversation_create, conversation_turn_start
from tests.factories import model_make

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/")  # sets the CSRF cookie, as the page does
    return client


def _send(client: Client, method: str, url: str, body: Any = None) -> Any:
    token = client.cookies["csrftoken"].value
    return client.generic(
        method,
        url,
        data=json.dumps(body) if body is not None else "",
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )


def test_the_home_page_is_the_chat_and_lists_only_usable_models(
    alice: Any, bob: Any
) -> None:
    from django.contrib.auth.models import Group

    model_make(public_id="open-chat", display_name="Open Chat")
    closed = model_make(public_id="closed-chat", everyone=False)
    closed.access_groups.add(Group.objects.create(name="lab"))
    model_make(public_id="embedder", supports_chat=False, supports_embeddings=True)
    mine = conversation_create(user=alice, title="Ants")
    conversation_create(user=bob, title="Bob's secret")
    page = _client(alice).get("/")
    assert page.status_code == 200
    state = page.context["chat_state"]
    assert [m["id"] for m in state["models"]] == ["open-chat"]
    html = page.content.decode()
    assert "Ants" in html and "Bob&#x27;s secret" not in html
    assert f'href="/chat/{mine.pk}/"' in html


def test_the_page_shows_a_conversation_with_its_messages(alice: Any) -> None:
    conversation = conversation_create(user=alice, title="Ants", model="m")
    conversation_turn_start(
        conversation=conversation, action="send", content="</script><b>x</b>"
    )
    page = _client(alice).get(f"/chat/{conversation.pk}/")
    assert page.status_code == 200
    state = page.context["chat_state"]["conversation"]
    assert state["messages"][0]["content"] == "</script><b>x</b>"
    assert "</script><b>x</b>" not in page.content.decode(), "json_script escapes"


def test_a_stranger_gets_404_for_anothers_conversation_by_page_and_api(
    alice: Any, bob: Any
) -> None:
    conversation = conversation_create(user=alice, title="Ants")
    client = _client(bob)
    url = f"/api/conversations/{conversation.pk}/"
    assert client.get(f"/chat/{conversation.pk}/").status_code == 404
    assert client.get(url).status_code == 404
    assert _send(client, "PATCH", url, {"title": "mine now"}).status_code == 404
    assert _send(client, "DELETE", url).status_code == 404
    conversation.refresh_from_db()
    assert conversation.title == "Ants"
    listed = client.get("/api/conversations/").json()["data"]
    assert listed == []


def test_conversations_are_created_renamed_searched_and_deleted(alice: Any) -> None:
    model_make(public_id="open-chat")
    client = _client(alice)
    created = _send(
        client,
        "POST",
        "/api/conversations/",
        {"model": "open-chat", "system_prompt": "Be brief.", "temperature": 0.3},
    )
    assert created.status_code == 201, created.content
    conversation_id = created.json()["id"]
    url = f"/api/conversations/{conversation_id}/"
    renamed = _send(client, "PATCH", url, {"title": "Ant navigation"})
    assert renamed.json()["title"] == "Ant navigation"
    conversation_create(user=alice, title="Bees")
    found = client.get("/api/conversations/?q=ANT").json()["data"]
    assert [c["title"] for c in found] == ["Ant navigation"]
    detail = client.get(url).json()
    assert detail["system_prompt"] == "Be brief." and detail["temperature"] == 0.3
    assert _send(client, "DELETE", url).status_code == 204
    assert not Conversation.objects.filter(pk=conversation_id).exists()


def test_it_refuses_models_the_user_may_not_use_and_unknown_fields(
    alice: Any,
) -> None:
    closed = model_make(public_id="closed-chat", everyone=False)
    assert isinstance(closed, Model)
    client = _client(alice)
    refused = _send(client, "POST", "/api/conversations/", {"model": "closed-chat"})
    assert refused.status_code == 400
    assert "model" in refused.json()["error"]["fields"]
    sneaky = _send(client, "POST", "/api/conversations/", {"user": 1})
    assert sneaky.status_code == 400
    hot = _send(client, "POST", "/api/conversations/", {"temperature": 9})
    assert hot.status_code == 400


def test_the_api_needs_the_csrf_token_and_a_login(alice: Any) -> None:
    client = _client(alice)
    forged = client.post(
        "/api/conversations/", data="{}", content_type="application/json"
    )
    assert forged.status_code == 403
    anonymous = Client().get("/api/conversations/")
    assert anonymous.status_code == 403
    assert Client().get("/").status_code == 302
