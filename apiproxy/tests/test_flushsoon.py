"""FlushSoon: one flush per burst, none when the work went otherwise, and a
new timer when the loop that held the old one is gone."""

from __future__ import annotations

import asyncio

from apiproxy.flushsoon import FlushSoon


def test_one_flush_per_burst_and_none_after_cancel() -> None:
    flushed: list[int] = []

    async def flush() -> None:
        flushed.append(1)

    async def scenario() -> None:
        soon = FlushSoon(flush, delay=0.01)
        for _ in range(5):
            soon.schedule()
        await asyncio.sleep(0.05)
        assert flushed == [1]
        soon.schedule()
        soon.cancel()
        await asyncio.sleep(0.05)
        assert flushed == [1]

    asyncio.run(scenario())


def test_a_timer_left_on_a_stopped_loop_does_not_block_the_next() -> None:
    flushed: list[str] = []
    soon = FlushSoon(lambda: _note(flushed), delay=0.01)

    async def schedule_and_leave() -> None:
        soon.schedule()  # the loop ends before the timer fires

    async def schedule_and_wait() -> None:
        soon.schedule()
        await asyncio.sleep(0.05)

    asyncio.run(schedule_and_leave())
    asyncio.run(schedule_and_wait())
    assert flushed == ["flushed"]


async def _note(flushed: list[str]) -> None:
    flushed.append("flushed")
