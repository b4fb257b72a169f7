"""A flush that waits a few milliseconds for a ride: work deferred off the
request path (rate-limit charges, slot releases) is normally carried by the
process's next Redis call of the same kind; this sends it on its own when no
such call comes in time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class FlushSoon:
    def __init__(self, flush: Callable[[], Awaitable[None]], *, delay: float) -> None:
        self.flush = flush
        self.delay = delay
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Held, so that a running flush cannot be garbage-collected.
        self._task: asyncio.Task[None] | None = None

    def schedule(self, *, delay: float | None = None) -> None:
        """Flush `delay` seconds from now (default: the one given at
        construction), unless already scheduled on this loop (a timer left on
        a loop that has stopped would never fire: test servers come and go in
        one process)."""
        loop = asyncio.get_running_loop()
        if self._timer is not None and self._loop is loop:
            return
        self._loop = loop
        self._timer = loop.call_later(
            self.delay if delay is None else delay, self._start
        )

    def cancel(self) -> None:
        """The pending work went with another call: nothing to flush."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self.flush())
