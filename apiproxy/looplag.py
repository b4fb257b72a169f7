"""How late the event loop runs what is due: the one figure that says a
worker is too busy before its clients do.

A timer asks to wake every LAG_INTERVAL seconds; how much later it actually
wakes is the time a callback ready at that moment waited for the loop (a
token to relay, a new connection to accept). The last minute of samples is
kept, and /metrics reports its 99th percentile and maximum. Ten wake-ups a
second cost nothing a request would notice, and the request path does no
work for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass

LAG_INTERVAL = 0.1
LAG_WINDOW_SAMPLES = 600  # one minute at LAG_INTERVAL


@dataclass(frozen=True, slots=True)
class LagStats:
    p99: float  # seconds, over the window
    max: float
    samples: int


class LoopLag:
    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=LAG_WINDOW_SAMPLES)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling on the running loop (lifespan startup); once."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._sample())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_INTERVAL
            await asyncio.sleep(LAG_INTERVAL)
            self.samples.append(max(0.0, loop.time() - due))

    def stats(self) -> LagStats:
        ordered = sorted(self.samples)
        if not ordered:
            return LagStats(p99=0.0, max=0.0, samples=0)
        index = min(len(ordered) - 1, int(0.99 * len(ordered)))
        return LagStats(p99=ordered[index], max=ordered[-1], samples=len(ordered))


loop_lag = LoopLag()
