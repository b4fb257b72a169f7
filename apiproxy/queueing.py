"""Step 4, queue: wait for a concurrency slot, fairly.

Each (backend, model) has a cap (Backend.max_concurrency). A request that finds
no free slot joins that model's bounded queue. When a slot frees, the queue
serves browser-chat requests first, then users in turn (round robin), each
user's own requests in arrival order: one user's 100 queued requests delay
another user's first one by at most one slot. Slots freed by other processes
are noticed by polling every QUEUE_POLL_SECONDS.

Fairness is per process; slots (and so the cap) are shared by all processes.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from django.conf import settings

from apiproxy.errors import ProxyError
from apiproxy.metrics import queue_wait_observe
from apiproxy.slots import slot_key, slot_pool, slot_route


@dataclass(eq=False)
class Waiter:
    user_id: int
    browser: bool
    future: asyncio.Future[str]
    enqueued_at: float = field(default_factory=time.monotonic)


class ModelQueue:
    def __init__(self, key: str, cap: int) -> None:
        self.key = key
        self.cap = cap
        # Users in serving order; a user moves to the back when served.
        self.lines: dict[bool, OrderedDict[int, deque[Waiter]]] = {
            True: OrderedDict(),  # browser chat
            False: OrderedDict(),  # API
        }
        self.waiting = 0
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.dispatcher: asyncio.Task[None] | None = None

    def add(self, waiter: Waiter) -> None:
        line = self.lines[waiter.browser]
        line.setdefault(waiter.user_id, deque()).append(waiter)
        self.waiting += 1
        if self.dispatcher is None or self.dispatcher.done():
            self.dispatcher = asyncio.get_running_loop().create_task(
                self._dispatch(), name=f"queue:{self.key}"
            )

    def remove(self, waiter: Waiter) -> None:
        line = self.lines[waiter.browser]
        own = line.get(waiter.user_id)
        if own is not None and waiter in own:
            own.remove(waiter)
            self.waiting -= 1
            if not own:
                del line[waiter.user_id]

    def _next(self) -> Waiter | None:
        for browser in (True, False):
            line = self.lines[browser]
            if line:
                user_id, own = next(iter(line.items()))
                waiter = own.popleft()
                self.waiting -= 1
                del line[user_id]
                if own:
                    line[user_id] = own  # to the back of the round
                return waiter
        return None

    def waiting_of(self, user_id: int) -> int:
        """Requests of `user_id` waiting here (browser and API together)."""
        return sum(len(line.get(user_id, ())) for line in self.lines.values())

    def position(self, waiter: Waiter) -> int:
        """1-based place in line under the current serving order."""
        ahead = 0
        if not waiter.browser:
            ahead += sum(len(own) for own in self.lines[True].values())
        line = self.lines[waiter.browser]
        own = line.get(waiter.user_id)
        if own is None or waiter not in own:
            return 1
        index = own.index(waiter)
        users = list(line)
        mine = users.index(waiter.user_id)
        for order, user_id in enumerate(users):
            if user_id == waiter.user_id:
                continue
            turns = index + 1 if order < mine else index
            ahead += min(len(line[user_id]), turns)
        return ahead + index + 1

    async def _dispatch(self) -> None:
        while self.waiting:
            lease = await slot_pool.try_acquire(self.key, self.cap)
            if lease is None:
                self.wake.clear()
                try:
                    await asyncio.wait_for(
                        self.wake.wait(), timeout=settings.QUEUE_POLL_SECONDS
                    )
                except TimeoutError:
                    pass
                continue
            waiter = self._next()
            if waiter is None or waiter.future.done():
                await slot_pool.release(lease)
                continue
            waiter.future.set_result(lease)


class QueueBoard:
    """Every model queue of this process."""

    def __init__(self) -> None:
        self.queues: dict[str, ModelQueue] = {}

    def queue(self, key: str, cap: int) -> ModelQueue:
        queue = self.queues.get(key)
        if queue is None or queue.loop is not asyncio.get_running_loop():
            queue = self.queues[key] = ModelQueue(key, cap)
        queue.cap = cap
        return queue

    def depth(self, key: str) -> int:
        queue = self.queues.get(key)
        return queue.waiting if queue else 0

    def stats(self) -> dict[tuple[int, str], int]:
        """Requests of this process waiting, per (backend id, upstream model)."""
        return {
            slot_route(key): queue.waiting for key, queue in list(self.queues.items())
        }

    async def release(self, key: str, lease: str) -> None:
        await slot_pool.release(lease)
        queue = self.queues.get(key)
        if queue is not None:
            queue.wake.set()


board = QueueBoard()

PositionCallback = Callable[[int], Awaitable[None]]


def queue_busy(model: str, waited: float | None) -> ProxyError:
    retry = settings.QUEUE_RETRY_AFTER
    if waited is None:
        message = (
            f"The model '{model}' is busy: its queue is full. Retry in {retry} s "
            "or choose another model."
        )
    else:
        message = (
            f"The model '{model}' is busy: your request waited {waited:.0f} s in "
            f"line without a free slot. Retry in {retry} s or choose another model."
        )
    return ProxyError(
        503,
        message,
        type="server_error",
        code="model_busy",
        headers=[(b"retry-after", str(retry).encode())],
        outcome="queue_timeout",
    )


def queue_share_used(model: str) -> ProxyError:
    """One user may hold only so many places in a model's line, so that one
    person's scripts cannot fill it for everyone."""
    limit = settings.QUEUE_MAX_WAITING_PER_USER
    return ProxyError(
        429,
        f"You already have {limit} requests waiting for '{model}'. Wait for "
        "some of them to finish before sending more.",
        type="requests",
        code="too_many_waiting",
        headers=[(b"retry-after", str(settings.QUEUE_RETRY_AFTER).encode())],
        outcome="rate_limited",
    )


def _place_check(queue: ModelQueue, user_id: int, public_model: str) -> None:
    """Refuse a place in line when the queue, or this user's share, is full."""
    if queue.waiting >= settings.QUEUE_MAX_WAITING:
        raise queue_busy(public_model, None)
    if queue.waiting_of(user_id) >= settings.QUEUE_MAX_WAITING_PER_USER:
        raise queue_share_used(public_model)


async def slot_wait(
    *,
    backend_id: int,
    upstream_model: str,
    cap: int,
    user_id: int,
    browser: bool,
    public_model: str,
    on_position: PositionCallback | None = None,
) -> str:
    """A lease on a slot for this request, waiting in line if needed.

    Raises a 503 ProxyError when the queue is full or the wait exceeds
    QUEUE_TIMEOUT. Cancellation (client gone) leaves the line cleanly.
    """
    key = slot_key(backend_id, upstream_model)
    queue = board.queue(key, cap)
    if not queue.waiting:
        lease = await slot_pool.try_acquire(key, cap)
        if lease is not None:
            queue_wait_observe(model=public_model, seconds=0.0)
            return lease
    _place_check(queue, user_id, public_model)
    waiter = Waiter(user_id, browser, asyncio.get_running_loop().create_future())
    queue.add(waiter)
    deadline = waiter.enqueued_at + settings.QUEUE_TIMEOUT
    reported, reported_at = 0, 0.0
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise queue_busy(public_model, settings.QUEUE_TIMEOUT)
            try:
                lease = await asyncio.wait_for(
                    asyncio.shield(waiter.future), timeout=min(remaining, 1.0)
                )
            except TimeoutError:
                pass
            else:
                waited = time.monotonic() - waiter.enqueued_at
                queue_wait_observe(model=public_model, seconds=waited)
                return lease
            if on_position is not None:
                place = queue.position(waiter)
                # On every change, and every few seconds as a keep-alive.
                if place != reported or time.monotonic() - reported_at >= 5:
                    reported, reported_at = place, time.monotonic()
                    await on_position(place)
    except BaseException:
        if waiter.future.done() and not waiter.future.cancelled():
            # Granted just as we gave up: hand the slot straight back.
            asyncio.get_running_loop().create_task(
                board.release(key, waiter.future.result())
            )
        raise
    finally:
        if not waiter.future.done():
            waiter.future.cancel()
            queue.remove(waiter)
