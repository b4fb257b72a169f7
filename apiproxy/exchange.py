"""One request in flight through the proxy, as every step sees it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from accounts.selectors import Principal
from apiproxy.http import Headers, Receive, TrackedSend
from usage.outcome import RequestOutcome


@dataclass
class Exchange:
    """One request in flight: what every step reads and the outcome it fills."""

    receive: Receive
    send: TrackedSend
    headers: Headers
    principal: Principal
    outcome: RequestOutcome
    response_headers: list[tuple[bytes, bytes]]
    browser: bool = False
    # Member of a group holding the dedicated (performance) service class.
    dedicated: bool = False
    # Called once admission has passed, before the relay (the browser door
    # records the user's turn then).
    on_admitted: Callable[[], Awaitable[None]] | None = None
    # Set once the SSE response has begun (queue position lines, or the relay):
    # from then on failures end the stream instead of getting a status code.
    stream_started: bool = False

    async def stream_start(self) -> None:
        if self.stream_started:
            return
        self.stream_started = True
        await self.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                    *self.response_headers,
                ],
            }
        )
        self.outcome.status = 200
