"""The backend's read timeout for a stream's body, on one timer per stream."""

from __future__ import annotations

import asyncio

import aiohttp


class ReadDeadline:
    """BACKEND_READ_TIMEOUT between the reads of a stream's body, on one timer
    per stream. aiohttp's own (`sock_read`) cancels and re-arms a timer on
    every chunk it receives, ~2 µs a token under uvloop; here each read only
    notes the loop's time, and the timer, when it fires, re-arms itself for
    the last read's deadline or ends the stream as aiohttp would (the read
    raises a SocketTimeoutError). The time the relay spends handing a chunk
    to a slow client does not count: it is the client's, and aiohttp's timer
    also stops while its buffer is full."""

    __slots__ = ("_content", "_handle", "_loop", "_timeout", "last", "paused")

    def __init__(self, response: aiohttp.ClientResponse, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._content = response.content
        self.last = self._loop.time()
        self.paused = False
        self._handle = self._loop.call_at(self.last + timeout, self._check)
        connection = response.connection
        if connection is not None and connection.protocol is not None:
            # aiohttp turns it off the same way for websockets; the timer
            # armed by the last read stops at the next one.
            connection.protocol.read_timeout = None

    def _check(self) -> None:
        now = self._loop.time()
        if self.paused:  # handing a chunk to the client: look again later
            self._handle = self._loop.call_at(now + self._timeout, self._check)
            return
        due = self.last + self._timeout
        if now < due:
            self._handle = self._loop.call_at(due, self._check)
            return
        self._content.set_exception(
            aiohttp.SocketTimeoutError("Timeout on reading data from socket")
        )

    def cancel(self) -> None:
        self._handle.cancel()
