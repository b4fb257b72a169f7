"""The metering buffer: request outcomes wait in memory and are written to the
database in batches, off the response path.

Nothing is written before the first byte and nothing per request on the
response path: `add` only appends to a list. A background flusher writes a
batch every FLUSH interval (or sooner when the batch is full) in a thread. A
failed write keeps the batch and retries with backoff, so a database outage of
minutes loses nothing; shutdown drains the buffer. Writes are idempotent by
request id, so a batch retried after a half-known failure never double counts.

What a hard crash (SIGKILL, power loss) can lose at most: the records of the
last flush interval plus any batch waiting on a database outage; nothing that
a completed flush wrote.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async
from django.conf import settings

if TYPE_CHECKING:
    from apiproxy.outcome import RequestOutcome

logger = logging.getLogger(__name__)


def usage_records_write(outcomes: list[RequestOutcome]) -> int:
    from django.db import close_old_connections

    from usage.services import usage_records_create

    close_old_connections()
    try:
        return usage_records_create(outcomes=outcomes)
    finally:
        close_old_connections()


class UsageBuffer:
    def __init__(self) -> None:
        self.pending: list[RequestOutcome] = []
        self.flush_failures = 0
        self._flusher: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._flush_lock: asyncio.Lock | None = None

    def add(self, outcome: RequestOutcome) -> None:
        self.pending.append(outcome)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._flusher is None or self._flusher.done():
            self._wake = asyncio.Event()
            self._flush_lock = asyncio.Lock()
            self._flusher = loop.create_task(self._run(), name="usage-flusher")
        if len(self.pending) >= settings.USAGE_FLUSH_BATCH and self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        backoff = settings.USAGE_FLUSH_SECONDS
        while True:
            assert self._wake is not None
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except TimeoutError:
                pass
            self._wake.clear()
            if await self.flush():
                backoff = settings.USAGE_FLUSH_SECONDS
            else:
                backoff = min(backoff * 2, 30.0)

    async def flush(self) -> bool:
        """Write what is pending. False when the database refused (the records
        stay pending and are written by a later flush)."""
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:
            while self.pending:
                batch = self.pending[: settings.USAGE_FLUSH_BATCH]
                try:
                    await sync_to_async(usage_records_write, thread_sensitive=False)(
                        batch
                    )
                except Exception:
                    self.flush_failures += 1
                    logger.exception(
                        "usage flush of %d records failed; %d kept for retry",
                        len(batch),
                        len(self.pending),
                    )
                    return False
                del self.pending[: len(batch)]
        return True

    async def drain(self, *, timeout: float = 30.0) -> None:
        """Write everything before the process exits (graceful shutdown)."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            if not await self.flush():
                await asyncio.sleep(0.5)
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self.pending:
            logger.error("shutdown with %d usage records unwritten", len(self.pending))

    def flush_sync(self) -> None:
        """For sync callers (management commands, tests outside a loop)."""
        while self.pending:
            batch = self.pending[: settings.USAGE_FLUSH_BATCH]
            usage_records_write(batch)
            del self.pending[: len(batch)]


usage_buffer = UsageBuffer()
