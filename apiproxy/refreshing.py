"""An in-memory copy of some database state, reloaded off the request path.

The hot path reads the current value; when it is older than its interval one
request starts a reload in a worker thread while the others keep using the
previous value, so a slow database never stalls a token stream. No asyncio.Lock:
one would bind a module-level instance to the first event loop that used it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _closing(load: Callable[[], T]) -> Callable[[], T]:
    def run() -> T:
        close_old_connections()
        try:
            return load()
        finally:
            close_old_connections()

    return run


class Refreshing(Generic[T]):
    def __init__(
        self, *, load: Callable[[], T], empty: T, interval_setting: str
    ) -> None:
        self._load = _closing(load)
        self.value = empty
        self.interval_setting = interval_setting
        self.loaded_at = 0.0
        self._reloading = False

    def invalidate(self) -> None:
        self.loaded_at = 0.0

    async def current(self) -> T:
        interval = getattr(settings, self.interval_setting)
        if time.monotonic() - self.loaded_at < interval:
            return self.value
        if self._reloading:
            # Polling, not an asyncio.Event: an Event would bind this shared
            # object to the first loop that waits on it.
            while self._reloading and not self.loaded_at:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            return self.value
        self._reloading = True
        try:
            self.value = await sync_to_async(self._load, thread_sensitive=False)()
        except Exception:
            if not self.loaded_at:
                raise
            logger.exception("reload failed; serving the previous copy")
        finally:
            self._reloading = False
        self.loaded_at = time.monotonic()
        return self.value
