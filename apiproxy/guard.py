"""Client-disconnect detection for the relay.

ASGI servers report a vanished client only through `receive()`, and uvicorn
silently drops writes to a closed connection. So while a response is relayed a
small watcher waits on `receive()` and cancels the relaying task the moment the
client goes; the relay's `finally` blocks then close the backend request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

from apiproxy.http import Receive


class DisconnectGuard:
    def __init__(
        self, receive: Receive, *, response_finished: Callable[[], bool]
    ) -> None:
        self.receive = receive
        self.response_finished = response_finished
        self.disconnected = False
        self._task: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                if self.response_finished():
                    return  # nothing left to interrupt; cleanup must not be cut
                self.disconnected = True
                if self._task is not None:
                    self._task.cancel()
                return

    async def __aenter__(self) -> DisconnectGuard:
        self._task = asyncio.current_task()
        self._watcher = asyncio.create_task(self._watch())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
        if exc_type is asyncio.CancelledError and self.disconnected:
            # Our own cancellation: the client left. Absorb it so the meter
            # still records the request; any other cancellation propagates.
            if self._task is not None:
                self._task.uncancel()
            return True
        return False
