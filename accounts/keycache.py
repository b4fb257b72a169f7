"""The proxy's key gate: `key_principal_get`, served from an in-process cache.

A cache hit costs a checksum, a SHA-256 and a dict lookup: no database, no
thread hop. A miss asks the one sync gate (`apikey_principal_get`, which calls
`apikey_authenticate`) once, in a worker thread, however many requests wait for
the same key at that moment.

Why a revocation is honoured everywhere within 2 seconds:

- every service that takes a key's power away calls `apikey_generation_bump()`
  (accounts.keysignal): this process drops its cache at once, and after the
  commit one Redis value is SET to a fresh random token;
- every process GETs that value at most once a second (one round trip, made
  by the first request after the second is up; requests meanwhile are not
  held) and drops its whole cache when the value moved;
- an entry carries the key's `expires_at`, checked on every hit (a key rolled
  with a grace period simply expires); refusals are cached for
  `NEGATIVE_SECONDS`; any entry is re-checked against the database after
  API_KEY_CACHE_SECONDS, which bounds changes made without a service (a user
  deactivated from a shell);
- when Redis cannot be read, the cache is dropped: the database decides.

While the database cannot be reached, an accepted entry past its
API_KEY_CACHE_SECONDS is served on for up to API_KEY_STALE_SECONDS more (a
key good a moment ago, with no revocation signal since), so a database
restart does not turn away the keys in use; a revocation still drops it at
once, since it clears the cache. Such a key asks the database again every
STALE_RETRY_SECONDS, not on every request.

User deactivation has no signal handler (no logic in signals): deactivating
through `user_deactivate`, the admin's deactivate action or any admin edit or
deletion of a user bumps the generation like a revocation does, so those take
effect within 2 seconds. A change made anywhere else (a shell, raw SQL) is
caught by the API_KEY_CACHE_SECONDS re-check; the sync gate itself always
checks `user.is_active`.

A miss that cannot reach the database raises (the proxy answers 503, not 401).

Refusals cost little and cannot crowd out good keys: a refused key is kept
apart from accepted ones (each store has its own bound, so a flood of made-up
keys never evicts a key in use); a lookup id no key has is refused without a
query for `NEGATIVE_SECONDS` whatever secret comes with it; and a client
address that has presented AUTH_FAILURES_PER_MINUTE refused keys this minute
gets `KeyThrottled` instead of another database look-up.

`last_used_at` is handed to `LastUsedWriter` at most once a minute per key per
process, and written off the request path in one UPDATE per batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.db import DatabaseError

from accounts.keyformat import dummy_digest_compare, key_digest, key_parse
from accounts.keysignal import (
    GENERATION_KEY,
    apikey_generation_bump,
    local_generation,
    remote_generation_read,
)
from accounts.selectors import KeyLookup, Principal, apikey_lookup
from accounts.services import apikey_last_used_record
from portal.dbthread import in_db_thread

__all__ = [
    "GENERATION_KEY",
    "KeyCache",
    "KeySignInRequired",
    "KeyThrottled",
    "LastUsedWriter",
    "Principal",
    "apikey_generation_bump",
    "key_cache",
    "key_principal_get",
]

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
NEGATIVE_SECONDS = 2.0
# While the database is away, how often a key served stale asks it again.
STALE_RETRY_SECONDS = 5.0
LAST_USED_EVERY_SECONDS = 60.0
# Accepted keys, and (apart) refusals and client addresses: each bounded, so
# a flood of random well-formed keys neither grows memory nor evicts good keys.
MAX_ENTRIES = 50_000
MAX_REFUSALS = 50_000
MAX_CLIENTS = 100_000
FAILURE_WINDOW_SECONDS = 60.0

_Slot = tuple[str, tuple[int, int]]


def _principal_load(raw_key: str) -> KeyLookup:
    return apikey_lookup(raw_key=raw_key)


class KeySignInRequired(Exception):
    """The key is sound but its owner has not signed in through their provider
    within SSO_REVALIDATE_DAYS; one sign-in in the browser brings it back."""


class KeyThrottled(Exception):
    """This client address presented too many refused keys this minute."""


def _last_used_write(uses: dict[int, float]) -> int:
    used_at = datetime.fromtimestamp(max(uses.values()), tz=UTC)
    return apikey_last_used_record(key_ids=sorted(uses), used_at=used_at)


class LastUsedWriter:
    """Collects (key id, time of use) and writes them in one UPDATE per batch,
    `delay` seconds after the first arrives. A failed write is kept and retried
    with the next batch, never dropped; `drain()` writes what is left."""

    def __init__(self, *, delay: float = 1.0) -> None:
        self.delay = delay
        self.writes = 0
        self._pending: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, key_id: int, at: float) -> None:
        self._pending[key_id] = max(at, self._pending.get(key_id, 0.0))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._later())

    async def _later(self) -> None:
        delay = self.delay
        while True:
            await asyncio.sleep(delay)
            if await self.flush():
                return
            delay = min(delay * 2, 60.0)

    async def flush(self) -> bool:
        if not self._pending:
            return True
        batch, self._pending = self._pending, {}
        try:
            await in_db_thread(_last_used_write, batch)
        except Exception:
            logger.warning("Could not record API key use; will retry", exc_info=True)
            for key_id, at in batch.items():
                self._pending[key_id] = max(at, self._pending.get(key_id, 0.0))
            return False
        self.writes += 1
        return True

    async def drain(self) -> None:
        """Write what is pending now (shutdown, tests)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self.flush()


@dataclass(slots=True)
class _Entry:
    principal: Principal
    generation: tuple[int, int]
    fresh_until: float
    # Served stale while the database is away: not asked again before this.
    retry_at: float = 0.0


@dataclass(slots=True)
class _Refusal:
    generation: tuple[int, int]
    fresh_until: float


@dataclass(frozen=True, slots=True)
class KeyCacheStats:
    entries: int  # accepted keys held
    refusals: int  # refused keys and unknown lookup ids held
    loads: int  # database look-ups since start
    throttled: int  # look-ups refused for a client's failure budget


class KeyCache:
    def __init__(
        self,
        *,
        loader: Callable[[str], KeyLookup] = _principal_load,
        writer: LastUsedWriter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.loader = loader
        self.writer = writer or LastUsedWriter()
        self.clock = clock
        self.loads = 0
        self.throttled = 0
        self.stale_served = 0  # entries served past their time, database away
        self._entries: dict[str, _Entry] = {}
        # Keyed by digest, or by "lookup:<id>" for a lookup id no key has.
        self._refusals: dict[str, _Refusal] = {}
        self._failures: dict[str, int] = {}
        self._failures_since = clock()
        self._inflight: dict[_Slot, asyncio.Task[Principal | None]] = {}
        self._last_noted: dict[int, float] = {}
        self._remote_seen: bytes | None = None
        self._epoch = 0
        self._local_seen = local_generation.value
        self._next_poll = 0.0

    def stats(self) -> KeyCacheStats:
        return KeyCacheStats(
            entries=len(self._entries),
            refusals=len(self._refusals),
            loads=self.loads,
            throttled=self.throttled,
        )

    def clear(self) -> None:
        self._entries.clear()
        self._refusals.clear()
        self._epoch += 1

    async def get(self, raw_key: str, *, client: str = "") -> Principal | None:
        """Who `raw_key` speaks for, or None. `client` (the caller's address)
        has a budget of refused keys per minute; past it, KeyThrottled."""
        parsed = key_parse(raw_key)
        if parsed is None:
            dummy_digest_compare(raw_key if isinstance(raw_key, str) else "")
            return None
        await self._poll()
        digest = key_digest(raw_key)
        now = self.clock()
        generation = (self._local_seen, self._epoch)
        entry = self._entries.get(digest)
        if (
            entry is not None
            and entry.generation == generation
            and (now < entry.fresh_until or now < entry.retry_at)
            and self._stale_usable(entry, generation, now)
        ):
            principal: Principal | None = entry.principal
        elif self._refused(digest, parsed.lookup_id, generation, now):
            principal = None
        else:
            self._budget_check(client, now)
            try:
                principal = await self._load(digest, raw_key, generation)
            except DatabaseError:
                if not self._stale_usable(entry, generation, now):
                    raise
                # Good a moment ago, no revocation since: serve it on, and ask
                # the database again only after a while (see the docstring).
                entry.retry_at = now + STALE_RETRY_SECONDS  # type: ignore[union-attr]
                self.stale_served += 1
                principal = entry.principal  # type: ignore[union-attr]
        wall_now = datetime.now(UTC)
        if principal is None or principal.is_expired_at(wall_now):
            self._failure_note(client)
            return None
        if principal.sign_in_lapsed_at(wall_now):
            raise KeySignInRequired
        self._note_use(principal.key_id, now)
        return principal

    def _stale_usable(
        self, entry: _Entry | None, generation: tuple[int, int], now: float
    ) -> bool:
        return (
            entry is not None
            and entry.generation == generation
            and now < entry.fresh_until + settings.API_KEY_STALE_SECONDS
        )

    def _refused(
        self, digest: str, lookup_id: str, generation: tuple[int, int], now: float
    ) -> bool:
        for name in (digest, f"lookup:{lookup_id}"):
            refusal = self._refusals.get(name)
            if (
                refusal is not None
                and refusal.generation == generation
                and now < refusal.fresh_until
            ):
                return True
        return False

    def _budget_check(self, client: str, now: float) -> None:
        if now - self._failures_since >= FAILURE_WINDOW_SECONDS:
            self._failures.clear()
            self._failures_since = now
        if (
            client
            and self._failures.get(client, 0) >= settings.AUTH_FAILURES_PER_MINUTE
        ):
            self.throttled += 1
            raise KeyThrottled

    def _failure_note(self, client: str) -> None:
        if not client:
            return
        if len(self._failures) >= MAX_CLIENTS:
            self._failures.clear()
        self._failures[client] = self._failures.get(client, 0) + 1

    async def _poll(self) -> None:
        if local_generation.value != self._local_seen:
            self._local_seen = local_generation.value
            self.clear()
        now = self.clock()
        if now < self._next_poll:
            return
        # Set first: requests arriving while the GET is out do not send another.
        self._next_poll = now + POLL_SECONDS
        try:
            seen = await remote_generation_read()
        except (redis.RedisError, OSError, DatabaseError):
            # Unknown whether a key was revoked meanwhile: forget them all.
            logger.warning("Cannot read the key generation", exc_info=True)
            self.clear()
            return
        if seen != self._remote_seen:
            self._remote_seen = seen
            self.clear()

    async def _load(
        self, digest: str, raw_key: str, generation: tuple[int, int]
    ) -> Principal | None:
        # One load per key and generation, in its own task: a request that is
        # cancelled (client gone) neither cancels nor loses the load for others.
        loop = asyncio.get_running_loop()
        slot = (digest, generation)
        task = self._inflight.get(slot)
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(self._load_and_store(digest, raw_key, generation))
            self._inflight[slot] = task
            task.add_done_callback(lambda done: self._load_done(slot, done))
        return await asyncio.shield(task)

    def _load_done(self, slot: _Slot, task: asyncio.Task[Principal | None]) -> None:
        if self._inflight.get(slot) is task:
            del self._inflight[slot]
        if not task.cancelled() and task.exception() is not None:
            logger.warning("API key lookup failed", exc_info=task.exception())

    async def _load_and_store(
        self, digest: str, raw_key: str, generation: tuple[int, int]
    ) -> Principal | None:
        self.loads += 1
        lookup = await in_db_thread(self.loader, raw_key)
        # Stored under the generation seen before the load: if a revocation
        # arrived meanwhile, the next request loads again.
        if lookup.principal is not None:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            fresh_until = self.clock() + settings.API_KEY_CACHE_SECONDS
            self._entries[digest] = _Entry(lookup.principal, generation, fresh_until)
            return lookup.principal
        if len(self._refusals) >= MAX_REFUSALS:
            self._refusals.clear()
        refusal = _Refusal(generation, self.clock() + NEGATIVE_SECONDS)
        self._refusals[digest] = refusal
        if not lookup.lookup_known:
            parsed = key_parse(raw_key)
            if parsed is not None:
                self._refusals[f"lookup:{parsed.lookup_id}"] = refusal
        return None

    def _note_use(self, key_id: int, now: float) -> None:
        last = self._last_noted.get(key_id)
        if last is not None and now - last < LAST_USED_EVERY_SECONDS:
            return
        if len(self._last_noted) >= MAX_ENTRIES:
            self._last_noted.clear()
        self._last_noted[key_id] = now
        self.writer.note(key_id, time.time())

    async def drain(self) -> None:
        """Write pending `last_used_at` values; call on shutdown."""
        await self.writer.drain()


key_cache = KeyCache()


async def key_principal_get(raw_key: str, *, client: str = "") -> Principal | None:
    """Who `raw_key` speaks for, or None: the proxy's only key check.
    Raises KeyThrottled when `client` has presented too many refused keys."""
    return await key_cache.get(raw_key, client=client)
