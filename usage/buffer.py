"""The metering buffer: request outcomes wait in memory and are written to the
database in batches, off the response path.

Nothing is written before the first byte and nothing per request on the
response path: `add` appends to a deque. A background flusher, every
USAGE_FLUSH_SECONDS (sooner when USAGE_FLUSH_BATCH outcomes wait):

1. turns outcomes into rows (billed at the quota weight each request was
   admitted at) and adds them to the quota counters, once per row, whether
   or not the database is up, then hands the same rows to the flush
   listeners (the project allocation counters: apps above usage register
   theirs with `flush_listener_add`, usage imports none of them);
2. spills rows beyond USAGE_BUFFER_MAX_RECORDS to a JSONL spool file under
   DATA_DIR/usage-spool/ (fsynced), so an outage bounds memory, not records;
3. writes rows in batches, idempotently by request id; a failed write keeps
   them and is retried with backoff (up to USAGE_FLUSH_RETRY_MAX_SECONDS
   apart), so a Postgres outage of minutes loses nothing;
4. after a successful write, replays spool files (its own, or those a dead
   process left behind).

A graceful shutdown drains: it writes what it can within the timeout and
spools the rest, so even a shutdown during an outage loses nothing. Records
are never dropped silently: if the spool cannot be written either, they stay
in memory beyond the bound and the failure is logged as an error.

What a hard crash (SIGKILL, OOM kill, power loss) of a server process can lose
at most: the requests in flight at that moment, plus the records in its
memory, i.e. those that ended within the last flush interval, or during a
database outage up to USAGE_BUFFER_MAX_RECORDS records not yet spilled.
Spooled records survive (replayed by the next process that starts with the
same DATA_DIR) and so does everything a completed write committed. Such lost
records may still have been added to the quota counters (the user is charged
for them until the window resets) but never appear in the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

from portal.dbthread import in_db_thread
from usage.metering import MeteredRow, row_from_outcome
from usage.outcome import RequestOutcome
from usage.quota import quota_usage_add
from usage.recordwrite import usage_records_create
from usage.spool import spool_claim, spool_done, spool_read, spool_release, spool_write

logger = logging.getLogger(__name__)

# A write that has not finished by then counts as failed; it may still commit
# later in its thread, which is harmless (writes are idempotent).
WRITE_TIMEOUT_SECONDS = 60.0
SPOOL_CHECK_SECONDS = 60.0
SPILL_LOG_SECONDS = 30.0


class FlushListener(Protocol):
    def __call__(self, *, rows: Sequence[MeteredRow]) -> Awaitable[None]: ...


_flush_listeners: list[FlushListener] = []


def flush_listener_add(listener: FlushListener) -> None:
    """Have `listener(rows=...)` called once per flushed batch of fresh rows,
    right after the quota counters took them (each row once). It must be
    quick (one round trip); what it raises is logged, never retried."""
    if listener not in _flush_listeners:
        _flush_listeners.append(listener)


def usage_rows_write(rows: Sequence[MeteredRow]) -> int:
    return usage_records_create(rows=rows)


@dataclass(frozen=True, slots=True)
class BufferStats:
    pending: int  # outcomes and rows in memory, not yet written
    written: int
    spilled: int  # rows spooled to disk during an outage
    replayed: int
    flush_failures: int


class UsageBuffer:
    def __init__(self) -> None:
        self.incoming: deque[RequestOutcome] = deque()
        self.rows: list[MeteredRow] = []  # counted, not yet written
        self.written = 0
        self.spilled = 0
        self.replayed = 0
        self.flush_failures = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._next_write = 0.0
        self._backoff = 0.0
        self._next_spool_check = 0.0
        self._spill_logged_at = -SPILL_LOG_SECONDS
        self._spilled_unlogged = 0

    @property
    def pending(self) -> int:
        return len(self.incoming) + len(self.rows)

    def stats(self) -> BufferStats:
        return BufferStats(
            pending=self.pending,
            written=self.written,
            spilled=self.spilled,
            replayed=self.replayed,
            flush_failures=self.flush_failures,
        )

    def add(self, outcome: RequestOutcome) -> None:
        """Hot path: O(1), never blocks, never raises."""
        if not settings.USAGE_METERING:
            return  # the benchmark's metering-off baseline (bench/run.py)
        self.incoming.append(outcome)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        # One flusher, on the loop that runs it; a new one when it ended or its
        # loop stopped (test servers come and go in one process).
        if self._flusher is None or self._flusher.done() or not self._loop_alive():
            self._start(loop)
        if len(self.incoming) >= settings.USAGE_FLUSH_BATCH and self._wake is not None:
            self._wake.set()

    def _loop_alive(self) -> bool:
        return self._loop is not None and self._loop.is_running()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._next_spool_check = 0.0
        self._flusher = loop.create_task(self._run(), name="usage-flusher")

    async def _run(self) -> None:
        while True:
            assert self._wake is not None
            try:
                await asyncio.wait_for(
                    self._wake.wait(), timeout=settings.USAGE_FLUSH_SECONDS
                )
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush(force=False)
            except Exception:
                # The flusher must outlive any bug in a step: records wait.
                logger.exception("usage flusher step failed")

    async def flush(self, *, force: bool = True) -> bool:
        """Count, spill and write what is pending. False when the database
        refused (the rows stay and are written later). Without `force`, a
        write is only tried when the retry backoff allows."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._take_incoming()
            await self._spill_excess()
            if not force and time.monotonic() < self._next_write:
                return False
            if not await self._write_rows():
                self._backoff = min(
                    max(self._backoff * 2, settings.USAGE_FLUSH_SECONDS),
                    settings.USAGE_FLUSH_RETRY_MAX_SECONDS,
                )
                self._next_write = time.monotonic() + self._backoff
                return False
            self._backoff = 0.0
            self._next_write = 0.0
            await self._replay_spool()
            return True

    async def _take_incoming(self) -> None:
        if not self.incoming:
            return
        fresh: list[MeteredRow] = []
        while self.incoming:
            outcome = self.incoming.popleft()
            if outcome.user_id is None:
                continue  # nobody to bill (the proxy does not submit these)
            fresh.append(row_from_outcome(outcome))
        self.rows.extend(fresh)
        try:
            await quota_usage_add(rows=fresh)
        except Exception:
            logger.exception("could not add %d rows to quota counters", len(fresh))
        if not fresh:
            return
        for listener in _flush_listeners:
            try:
                await listener(rows=fresh)
            except Exception:
                logger.exception("flush listener %r failed", listener)

    async def _spill_excess(self) -> None:
        bound = settings.USAGE_BUFFER_MAX_RECORDS
        if len(self.rows) <= bound:
            return
        excess = self.rows[bound:]
        try:
            path = await asyncio.to_thread(spool_write, excess)
        except OSError:
            logger.exception(
                "cannot spool %d usage records; keeping them in memory beyond "
                "USAGE_BUFFER_MAX_RECORDS=%d",
                len(excess),
                bound,
            )
            return
        del self.rows[bound:]
        self.spilled += len(excess)
        self._next_spool_check = 0.0
        # One line per 30 s of outage, not one per flush interval.
        self._spilled_unlogged += len(excess)
        now = time.monotonic()
        if now - self._spill_logged_at >= SPILL_LOG_SECONDS:
            logger.warning(
                "usage database unavailable: %d more records spooled (to %s and "
                "earlier files); they are written when it returns",
                self._spilled_unlogged,
                path.parent,
            )
            self._spill_logged_at, self._spilled_unlogged = now, 0

    async def _write(self, rows: Sequence[MeteredRow]) -> None:
        write = in_db_thread(usage_rows_write, rows)
        await asyncio.wait_for(write, timeout=WRITE_TIMEOUT_SECONDS)

    async def _write_rows(self) -> bool:
        while self.rows:
            batch = self.rows[: settings.USAGE_FLUSH_BATCH]
            try:
                await self._write(batch)
            except Exception as error:
                self.flush_failures += 1
                logger.warning(
                    "usage write of %d records failed (%s); %d kept for retry",
                    len(batch),
                    type(error).__name__,
                    len(self.rows),
                    exc_info=self.flush_failures == 1,
                )
                return False
            del self.rows[: len(batch)]
            self.written += len(batch)
        return True

    async def _replay_spool(self) -> None:
        now = time.monotonic()
        if now < self._next_spool_check:
            return
        self._next_spool_check = now + SPOOL_CHECK_SECONDS
        paths = await asyncio.to_thread(spool_claim)
        for index, path in enumerate(paths):
            rows = await asyncio.to_thread(spool_read, path)
            try:
                for start in range(0, len(rows), settings.USAGE_FLUSH_BATCH):
                    await self._write(rows[start : start + settings.USAGE_FLUSH_BATCH])
            except Exception:
                logger.warning("replaying usage spool %s failed; later", path)
                for unfinished in paths[index:]:
                    await asyncio.to_thread(spool_release, unfinished)
                self._next_spool_check = 0.0
                return
            await asyncio.to_thread(spool_done, path)
            self.replayed += len(rows)
            logger.info("replayed %d usage records from %s", len(rows), path)

    async def drain(self, *, within: float = 30.0) -> None:
        """Graceful shutdown: write everything, spooling what the database
        would not take in time, so that nothing is lost."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        deadline = time.monotonic() + within
        while self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                if await asyncio.wait_for(self.flush(), timeout=left):
                    continue
            except TimeoutError:
                break
            await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        if not self.pending:
            return
        await self._take_incoming()
        rows, self.rows = self.rows, []
        try:
            path = await asyncio.to_thread(spool_write, rows)
        except OSError:
            self.rows = rows
            logger.error("shutdown with %d usage records unwritten", len(rows))
            return
        self.spilled += len(rows)
        logger.warning(
            "shutdown before the database took %d usage records: spooled to %s",
            len(rows),
            path,
        )


usage_buffer = UsageBuffer()
