"""An in-memory copy of some database state, reloaded off the request path.

The hot path reads the current value; when it is older than its interval one
request starts a reload in a worker thread while the others keep using the
previous value, so a slow database never stalls a token stream. No asyncio.Lock:
one would bind a module-level instance to the first event loop that used it.

A failed reload keeps the previous copy. When the very first load fails there
is no previous copy: by default the error reaches the caller (the proxy answers
503 rather than guess who may use what); with `fail_open` the `empty` value is
served instead, for figures where serving is safer than refusing (quotas are a
budget, not a security boundary).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.conf import settings

from portal.dbthread import in_db_thread

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Refreshing(Generic[T]):
    def __init__(
        self,
        *,
        load: Callable[[], T],
        empty: T,
        interval_setting: str,
        fail_open: bool = False,
    ) -> None:
        self._load = load
        self.value = empty
        self.interval_setting = interval_setting
        self.fail_open = fail_open
        self.loaded_at = 0.0
        self._loaded_once = False
        self._reloading = False
        self._stale = False

    def invalidate(self) -> None:
        # loaded_at = 0 makes callers that arrive during the reload wait for
        # the fresh copy; the flag makes sure there is a reload at all, as
        # monotonic time starts near 0 at boot ("loaded at 0" can look fresh
        # on a machine up less than the interval).
        self.loaded_at = 0.0
        self._stale = True

    async def current(self) -> T:
        interval = getattr(settings, self.interval_setting)
        if not self._stale and time.monotonic() - self.loaded_at < interval:
            return self.value
        if self._reloading:
            # Polling, not an asyncio.Event: an Event would bind this shared
            # object to the first loop that waits on it.
            while self._reloading and not self.loaded_at:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            return self.value
        self._reloading = True
        self._stale = False
        try:
            self.value = await in_db_thread(self._load)
            self._loaded_once = True
        except Exception:
            if not self._loaded_once and not self.fail_open:
                raise
            logger.exception("reload failed; serving the previous copy")
        finally:
            self._reloading = False
        self.loaded_at = time.monotonic()
        return self.value
