"""Chat fixtures: the proxy rig (uvicorn + fake backend + alice) with
browser-session clients, and a vision model on the fake backend."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from django.test import Client

from accounts.models import User
from apiproxy.models import Model
from chat.models import Conversation
from chat.services import conversation_create
from tests.fixtures_proxy import ProxyRig


def session_cookies(user: User) -> dict[str, str]:
    """A logged-in session for `user` and a CSRF cookie, as a browser holds."""
    client = Client()
    client.force_login(user)
    return {
        "sessionid": client.cookies["sessionid"].value,
        "csrftoken": secrets.token_hex(16),  # 32 characters, Django's secret size
    }


@dataclass
class ChatRig:
    proxy: ProxyRig

    @property
    def url(self) -> str:
        return self.proxy.server.url

    @property
    def backend(self) -> Any:
        return self.proxy.backend

    @property
    def alice(self) -> User:
        return self.proxy.user

    def session(self, user: User, *, csrf: bool = True) -> httpx.Client:
        """An HTTP client with `user`'s session (and the CSRF header)."""
        cookies = session_cookies(user)
        headers = {"x-csrftoken": cookies["csrftoken"]} if csrf else {}
        return httpx.Client(
            base_url=self.url, cookies=cookies, headers=headers, timeout=20
        )

    def conversation(self, user: User | None = None, **fields: Any) -> Conversation:
        fields.setdefault("model", "fake-chat")
        return conversation_create(user=user or self.alice, **fields)

    def vision_model(self) -> Model:
        """Let the fake backend serve `fake-vision`, marked vision-capable."""
        from apiproxy.catalog import catalog
        from apiproxy.models import Backend
        from apiproxy.services import backend_discover_models

        self.backend.behaviour.models = [*self.backend.behaviour.models, "fake-vision"]
        backend_discover_models(backend=Backend.objects.get(name="fake"))
        Model.objects.filter(public_id="fake-vision").update(
            supports_vision=True, capabilities_locked=True
        )
        catalog.invalidate()
        return Model.objects.get(public_id="fake-vision")


@pytest.fixture
def chat(proxy: ProxyRig, settings: Any) -> Iterator[ChatRig]:
    settings.LIMITS_REFRESH_SECONDS = 0.0
    yield ChatRig(proxy=proxy)
