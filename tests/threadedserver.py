"""An aiohttp application served on a loopback port from its own event loop in
its own thread, so that sync tests, async tests and the server under test can
all reach it over real sockets (tests.fakereasoning and tests.mediaserver; the
fake backend keeps its own, which can also stop and start on one port)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable

from aiohttp import web


class ThreadedServer:
    def __init__(self, app_build: Callable[[], web.Application], *, name: str) -> None:
        self.app_build = app_build
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=name, daemon=True
        )
        self._runner: web.AppRunner | None = None

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)

    def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    async def _serve(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        # handler_cancellation: a client that leaves cancels its handler, as a
        # real server's would end.
        runner = web.AppRunner(
            self.app_build(),
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=0.5,
        )
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner
