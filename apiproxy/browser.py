"""The browser door: how the chat page's streaming call enters the proxy.

Mounted in portal/asgi.py beside the API door, for a browser app (the chat,
chat.stream) that says what one call means through a `BrowserTurn`. A request:

1. is read (bounded) and, in ONE worker-thread hop, passes Django's own
   session loading, `django.contrib.auth.get_user` and `CsrfViewMiddleware`
   (the real middleware code, not a copy), then the turn's `prepare`, which
   may read and write the database and returns the OpenAI request to send;
2. goes through the same pipeline as an API request (quota, rate limits,
   queue, relay, meter) as browser traffic: no key, the user's own bucket
   with its reserved browser share, first in the queues, metered as
   `source="browser"`; once admitted, the turn's `admitted` runs in a second
   hop, so a refused request writes nothing;
3. when the response has ended, however it ended (finished, the user pressed
   Stop, an error), the turn's `finish` runs once in a last hop with the
   text the browser was sent, so a stopped answer keeps what was shown.

Nothing touches Django between those hops: the stream itself stays on the
lean path, and it is relayed byte for byte (the text is read from a copy).
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from django.conf import settings
from django.contrib import auth
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import SuspiciousOperation
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware

from accounts.selectors import Principal, principal_for_user
from apiproxy.app import exchange_serve
from apiproxy.errors import ProxyError
from apiproxy.exchange import Exchange
from apiproxy.handlers import completion_handle
from apiproxy.http import Headers, Receive, Send, TrackedSend, body_read, header_get
from apiproxy.projectcheck import project_class_apply
from apiproxy.refusals import refusal_budget
from portal.dbthread import in_db_thread
from usage.outcome import RequestOutcome

logger = logging.getLogger(__name__)

# An error answer is short; a copy is kept only to show its message.
_ERROR_BODY_LIMIT = 64 * 1024


@dataclass
class BrowserResult:
    """How a browser call ended, for `BrowserTurn.finish`."""

    text: str  # the assistant text the browser was sent
    error: str  # the error message it was shown, "" if none
    outcome: RequestOutcome  # tokens, finish reason, status, request id
    # A reasoning model's thinking (`delta.reasoning_content`, or vLLM's newer
    # `delta.reasoning`) as sent, and how long it took: from its first piece
    # to the answer's first text (or the end, when no answer came).
    reasoning: str = ""
    reasoning_seconds: float | None = None


class BrowserTurn(Protocol):
    """What a browser app decides about one call (one instance per request)."""

    def prepare(self, *, request: HttpRequest, principal: Principal) -> bytes:
        """In the Django hop, after the session and CSRF checks passed
        (`request.user` is the active user): the body of the chat completion
        request to send. Raise ProxyError to refuse."""
        ...

    def bills_project(self) -> int | None:
        """After `prepare`: the project this call draws on (the user is a
        member), or None for the user's own budget."""
        ...

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """After `prepare`: headers telling the page about the call (e.g. what
        the app left out of the request), on the answer and a refusal alike."""
        ...

    def admitted(self) -> None:
        """In a second Django hop, once the proxy has admitted the request and
        before anything is relayed: write what the call changes. A request the
        proxy refuses (over a limit, too long for the model) writes nothing."""
        ...

    def finish(self, *, result: BrowserResult) -> None:
        """Once, after the response ended; not called if `prepare` refused."""
        ...


def _no_response(request: HttpRequest) -> HttpResponse:  # pragma: no cover
    raise AssertionError("the browser door never calls a view")


def _door_view(request: HttpRequest) -> HttpResponse:  # pragma: no cover
    raise AssertionError("only named for CsrfViewMiddleware.process_view")


def _django_gate(
    scope: dict[str, Any], body: bytes, turn: BrowserTurn
) -> tuple[Principal, bytes]:
    """Session, user and CSRF as Django's middleware would decide them, then
    the turn's own preparation, all in one worker-thread hop."""
    request = ASGIRequest(scope, io.BytesIO(body))
    try:
        SessionMiddleware(_no_response).process_request(request)
        request.user = auth.get_user(request)
        csrf = CsrfViewMiddleware(_no_response)
        csrf.process_request(request)
        refused = csrf.process_view(request, _door_view, (), {})
    except SuspiciousOperation:  # a Host header not in ALLOWED_HOSTS, ...
        raise ProxyError(400, "Bad request.", code="bad_request") from None
    if refused is not None:
        raise _csrf_failed()
    user = request.user
    if not user.is_authenticated or not user.is_active:
        raise _not_logged_in()
    principal = principal_for_user(user=user)
    body = turn.prepare(request=request, principal=principal)
    project_id = turn.bills_project()
    if project_id is not None:
        principal = replace(principal, project_id=project_id)
    return principal, body


class StreamText:
    """Reads the assistant text, any reasoning and any error message from what
    is sent to the browser, without touching the bytes relayed."""

    def __init__(self) -> None:
        self.status = 0
        self.error = ""
        self._parts: list[str] = []
        self._thoughts: list[str] = []
        self._thinking: tuple[float, float | None] | None = None  # start, end
        self._events = False
        self._pending = b""

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def reasoning(self) -> str:
        return "".join(self._thoughts)

    @property
    def reasoning_seconds(self) -> float | None:
        if self._thinking is None:
            return None
        start, end = self._thinking
        return round((end or time.monotonic()) - start, 2)

    def feed(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            content_type = dict(message.get("headers", ())).get(b"content-type", b"")
            self._events = content_type.startswith(b"text/event-stream")
            return
        body = message.get("body", b"")
        if not self._events:
            if len(self._pending) < _ERROR_BODY_LIMIT:
                self._pending += body
            if not message.get("more_body", False):
                self._error_from(self._pending)
            return
        *lines, self._pending = (self._pending + body).split(b"\n")
        for line in lines:
            self._line(line.rstrip(b"\r"))

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return  # comments (queue positions), blank separators
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        if "error" in event:
            self._error_from(data)
        for choice in event.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thought, str) and thought:
                self._thoughts.append(thought)
                if self._thinking is None:
                    self._thinking = (time.monotonic(), None)
            content = delta.get("content")
            if isinstance(content, str):
                self._parts.append(content)
                if content and self._thinking and self._thinking[1] is None:
                    self._thinking = (self._thinking[0], time.monotonic())

    def _error_from(self, body: bytes) -> None:
        try:
            error = json.loads(body).get("error") or {}
            self.error = str(error.get("message") or "error")
        except (ValueError, AttributeError):
            self.error = "error"


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that yields `body` first, then the client's own messages (the
    disconnect guard listens to those)."""
    given = False

    async def replay() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_length(headers: Headers, length: int) -> Headers:
    kept = [(k, v) for k, v in headers if k not in (b"content-length", b"content-type")]
    return [
        *kept,
        (b"content-type", b"application/json"),
        (b"content-length", str(length).encode()),
    ]


ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


def _credentials_present(headers: Headers) -> None:
    """Refuse, from the headers alone, a call that cannot pass the Django hop:
    no session cookie or no CSRF header. Nothing of the body is read for it, so
    anonymous clients cannot make the door buffer a turn's worth of bytes."""
    cookies = b"; ".join(value for name, value in headers if name == b"cookie")
    session = settings.SESSION_COOKIE_NAME.encode() + b"="
    if session not in cookies:
        raise _not_logged_in()
    csrf_header = settings.CSRF_HEADER_NAME.removeprefix("HTTP_").replace("_", "-")
    if header_get(headers, csrf_header.lower().encode()) is None:
        raise _csrf_failed()


def _not_logged_in() -> ProxyError:
    return ProxyError(
        401,
        "You are not logged in (any more). Reload the page to log in.",
        type="authentication_error",
        code="not_authenticated",
    )


def _csrf_failed() -> ProxyError:
    return ProxyError(
        403,
        "The page's security token is missing or out of date. Reload the page.",
        type="permission_error",
        code="csrf_failed",
    )


class _BrowserCall:
    """One call through the browser door: the Django hop, the pipeline, and
    the turn's `finish` once the response has ended."""

    def __init__(
        self, scope: dict[str, Any], receive: Receive, send: Send, turn: BrowserTurn
    ) -> None:
        self.scope, self.receive, self.send, self.turn = scope, receive, send, turn
        request_id = "req_" + uuid.uuid4().hex
        self.outcome = RequestOutcome(
            request_id=request_id, endpoint="chat/completions", source="browser"
        )
        self.response_headers = [
            (b"x-request-id", request_id.encode()),
            (b"cache-control", b"no-store"),
        ]
        self.seen = StreamText()
        self.prepared = False

    async def serve(self) -> None:
        try:
            await exchange_serve(
                self.observed_send,
                outcome=self.outcome,
                response_headers=self.response_headers,
                step=self.step,
            )
        finally:
            if self.prepared:
                await self.finish()

    async def observed_send(self, message: dict[str, Any]) -> None:
        self.seen.feed(message)
        await self.send(message)

    async def step(self, tracked_send: TrackedSend) -> None:
        if self.scope["method"] != "POST":
            raise ProxyError(
                405,
                "Only POST is allowed here.",
                code="method_not_allowed",
                headers=[(b"allow", b"POST")],
            )
        headers = self.scope["headers"]
        _credentials_present(headers)
        raw = await body_read(self.receive, headers, limit=settings.CHAT_MAX_TURN_BYTES)
        principal, body = await in_db_thread(_django_gate, self.scope, raw, self.turn)
        principal = await project_class_apply(principal)
        self.prepared = True
        self.response_headers.extend(self.turn.response_headers())
        self.outcome.user_id = principal.user_id
        self.outcome.project_id = principal.project_id
        refusal_budget.check(principal.user_id)
        exchange = Exchange(
            receive=_replaying(body, self.receive),
            send=tracked_send,
            headers=_with_length(headers, len(body)),
            principal=principal,
            outcome=self.outcome,
            response_headers=self.response_headers,
            browser=True,
            on_admitted=lambda: in_db_thread(self.turn.admitted),
        )
        await completion_handle(exchange, "chat/completions")

    async def finish(self) -> None:
        result = BrowserResult(
            text=self.seen.text,
            error=self.seen.error,
            outcome=self.outcome,
            reasoning=self.seen.reasoning,
            reasoning_seconds=self.seen.reasoning_seconds,
        )
        try:
            await in_db_thread(self.turn.finish, result=result)
        except Exception:
            logger.exception(
                "could not record browser request %s", self.outcome.request_id
            )


def browser_application(turn_factory: Callable[[], BrowserTurn]) -> ASGIApp:
    """An ASGI app serving one browser app's streaming calls (POST only)."""

    async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await _BrowserCall(scope, receive, send, turn_factory()).serve()

    return application
