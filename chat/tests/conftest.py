"""Chat fixtures: the proxy rig (uvicorn + fake backend + alice) with
browser-session clients, and a vision model on the fake backend."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from django.test import Client

from accounts.models import User
from catalog.models import Model
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
        from catalog.models import Backend
        from catalog.services import backend_discover_models

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
    # The queue tests hold a slot with a slow first byte (5 s).
    settings.BACKEND_READ_TIMEOUT = 10.0
    yield ChatRig(proxy=proxy)


REMOTE = re.compile(r"^(?!https?://(127\.0\.0\.1|localhost)(:\d+)?/)(https?|wss?)://")


@dataclass
class ChatBrowser:
    """A chromium page on the chat that records what must never happen:
    dialogs, requests to other hosts (refused), CSP violations."""

    rig: ChatRig
    page: Any
    dialogs: list[str] = field(default_factory=list)
    remote_requests: list[str] = field(default_factory=list)
    csp_errors: list[str] = field(default_factory=list)
    _turns: str = "0"

    def login(self, user: User) -> None:
        cookies = session_cookies(user)
        self.page.context.add_cookies(
            [{"name": k, "value": v, "url": self.rig.url} for k, v in cookies.items()]
        )

    def open(self, path: str = "/") -> Any:
        response = self.page.goto(self.rig.url + path)
        if response is not None and response.status == 200:
            self.page.wait_for_selector("#chat.ready")
        return response

    def send(self, text: str) -> None:
        """Type `text` and press Enter; returns once the answer has begun."""
        from playwright.sync_api import expect

        answers = self.page.locator(".msg.assistant")
        before = answers.count()
        self.mark()
        self.page.fill("#prompt", text)
        self.page.press("#prompt", "Enter")
        expect(answers).to_have_count(before + 1)

    def mark(self) -> None:
        """Call before starting a turn by hand (a click): wait_idle waits for it."""
        self._turns = self.page.get_attribute("#chat", "data-turns") or "0"

    def wait_idle(self) -> None:
        """Until the turn begun after the last mark() has ended."""
        self.page.wait_for_selector(
            f"#chat:not([data-turns='{self._turns}'])", state="attached", timeout=20_000
        )
        self.page.wait_for_selector("#send:not([hidden])")

    def answer(self, index: int = -1) -> Any:
        return self.page.locator(".msg.assistant .msg-body").nth(index)

    def assert_nothing_escaped(self) -> None:
        assert not self.dialogs, self.dialogs
        assert not self.remote_requests, self.remote_requests
        assert not self.csp_errors, self.csp_errors


@pytest.fixture
def chat_browser(chat: ChatRig, page: Any) -> Iterator[ChatBrowser]:
    browser = ChatBrowser(rig=chat, page=page)

    def on_dialog(dialog: Any) -> None:
        browser.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            browser.csp_errors.append(message.text)

    def on_request(request: Any) -> None:
        if REMOTE.match(request.url):
            browser.remote_requests.append(request.url)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("request", on_request)
    # Anything bound elsewhere is refused here too, so a test never leaves
    # this machine even when it fails.
    page.route(REMOTE, lambda route: route.abort())
    yield browser
    # The page goes first, so that nothing new starts; what it left running
    # (a stopped turn being stored, a refetch) ends before the database is
    # flushed for the next test.
    page.close()
    chat.proxy.server.wait_quiet()
