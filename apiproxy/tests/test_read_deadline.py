"""The read deadline of a relayed stream's body (apiproxy.readdeadline.ReadDeadline):
one timer per stream instead of aiohttp's one per chunk. The stall itself,
end to end, is in test_proxy_streams."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp

from apiproxy.readdeadline import ReadDeadline

TIMEOUT = 0.3  # wide margins: a busy machine delays timers by tens of ms


class Content:
    def __init__(self) -> None:
        self.exception: BaseException | None = None

    def set_exception(self, exception: BaseException) -> None:
        self.exception = exception


def _deadline() -> tuple[ReadDeadline, Content]:
    content = Content()
    response = SimpleNamespace(content=content, connection=None)
    return ReadDeadline(response, TIMEOUT), content  # type: ignore[arg-type]


async def test_a_body_silent_for_the_timeout_fails_as_aiohttp_would() -> None:
    _, content = _deadline()
    await asyncio.sleep(TIMEOUT + 0.2)
    assert isinstance(content.exception, aiohttp.SocketTimeoutError)
    assert isinstance(content.exception, TimeoutError)  # what the relay catches


async def test_each_read_pushes_the_deadline_back() -> None:
    deadline, content = _deadline()
    loop = asyncio.get_running_loop()
    for _ in range(10):  # 0.5 s of reads, 0.05 s apart
        await asyncio.sleep(0.05)
        deadline.last = loop.time()
    assert content.exception is None
    deadline.cancel()


async def test_time_spent_handing_a_chunk_to_the_client_does_not_count() -> None:
    deadline, content = _deadline()
    loop = asyncio.get_running_loop()
    deadline.paused = True  # a slow client: the send takes twice the timeout
    await asyncio.sleep(2 * TIMEOUT)
    deadline.paused = False
    deadline.last = loop.time()
    assert content.exception is None
    await asyncio.sleep(TIMEOUT + 0.2)  # then the backend falls silent
    assert isinstance(content.exception, aiohttp.SocketTimeoutError)


async def test_its_timer_switches_aiohttps_off_for_the_body() -> None:
    protocol = SimpleNamespace(read_timeout=300.0)
    response = SimpleNamespace(
        content=Content(), connection=SimpleNamespace(protocol=protocol)
    )
    ReadDeadline(response, TIMEOUT).cancel()  # type: ignore[arg-type]
    assert protocol.read_timeout is None
