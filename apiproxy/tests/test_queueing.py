"""Per-model queues: fair across users, bounded, honest about waiting, and
never leaking a slot."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import redis

from accounts.services import apikey_create
from apiproxy.catalog import catalog
from apiproxy.queueing import ModelQueue, Waiter, board
from apiproxy.slots import slot_key
from catalog.models import Backend
from tests.factories import user_make
from tests.fixtures_proxy import ProxyRig


def cap_backends(cap: int) -> None:
    Backend.objects.update(max_concurrency=cap)
    catalog.invalidate()


def stream_request(url: str, key: str, text: str, results: dict, name: str) -> None:
    submitted = time.monotonic()
    lines: list[str] = []
    with httpx.Client(timeout=60) as http:
        with http.stream(
            "POST",
            url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={
                "model": "fake-chat",
                "messages": [{"role": "user", "content": text}],
                "stream": True,
            },
        ) as response:
            status = response.status_code
            lines = list(response.iter_lines())
    results[name] = (submitted, status, lines)


def backend_key(proxy: ProxyRig) -> str:
    backend = Backend.objects.get()
    return slot_key(backend.pk, "fake-chat")


def test_one_users_backlog_delays_anothers_first_request_by_at_most_one_slot(
    proxy: ProxyRig, settings
) -> None:
    settings.QUEUE_MAX_WAITING_PER_USER = 100
    cap_backends(2)
    bob = user_make(username="bob")
    bob_key = apikey_create(user=bob, name="b").raw
    results: dict[str, tuple] = {}
    # Warm the key cache so that arrival order is not shuffled by lookups.
    for key_ in (proxy.key, bob_key):
        stream_request(proxy.server.url, key_, "warm-up", results, "warm-up")
    proxy.backend.reset()
    proxy.backend.behaviour.tokens = 3
    proxy.backend.behaviour.token_delay = 0.2
    threads = []
    key = backend_key(proxy)

    def arrived() -> int:
        return board.depth(key) + len(proxy.backend.requests("/v1/chat/completions"))

    for index in range(50):
        thread = threading.Thread(
            target=stream_request,
            args=(proxy.server.url, proxy.key, f"A-{index:02d}", results, f"A{index}"),
        )
        thread.start()
        threads.append(thread)
        # One at a time into the line: the order they joined is what it must keep.
        deadline = time.monotonic() + 5
        while arrived() < index + 1 and time.monotonic() < deadline:
            time.sleep(0.002)
    assert board.depth(key) >= 15, "A must have a backlog when B arrives"
    bob_thread = threading.Thread(
        target=stream_request, args=(proxy.server.url, bob_key, "B-00", results, "B")
    )
    bob_thread.start()
    for thread in [*threads, bob_thread]:
        thread.join(timeout=60)

    received = proxy.backend.requests("/v1/chat/completions")
    by_text = {r.json["messages"][0]["content"]: r for r in received}
    slot_time = 3 * 0.2 + 0.2
    bob_started = by_text["B-00"].started_at - results["B"][0]
    assert bob_started <= slot_time + 0.3, bob_started
    a_order = [
        r.json["messages"][0]["content"]
        for r in sorted(received, key=lambda r: r.started_at)
        if r.json["messages"][0]["content"].startswith("A-")
    ]
    assert a_order == sorted(a_order)
    assert all(status == 200 for _, status, _ in results.values())
    assert len(received) == 51


def test_a_waiting_stream_is_told_its_place_in_line(proxy: ProxyRig) -> None:
    cap_backends(1)
    proxy.backend.behaviour.tokens = 12
    proxy.backend.behaviour.token_delay = 0.2
    results: dict[str, tuple] = {}
    first = threading.Thread(
        target=stream_request, args=(proxy.server.url, proxy.key, "one", results, "1")
    )
    first.start()
    time.sleep(0.3)
    stream_request(proxy.server.url, proxy.key, "two", results, "2")
    first.join()
    lines = results["2"][2]
    assert results["2"][1] == 200
    assert ": waiting for 'fake-chat', position 1 in line" in lines
    assert lines[-1] == "data: [DONE]" or "data: [DONE]" in lines


def post_while_the_only_slot_is_busy(proxy: ProxyRig) -> tuple[httpx.Response, float]:
    """Hold the model's one slot with a slow stream, then ask for it."""
    cap_backends(1)
    proxy.backend.behaviour.tokens = 20
    proxy.backend.behaviour.token_delay = 0.1
    results: dict[str, tuple] = {}
    first = threading.Thread(
        target=stream_request, args=(proxy.server.url, proxy.key, "one", results, "1")
    )
    first.start()
    time.sleep(0.2)
    with proxy.http() as http:
        started = time.monotonic()
        response = http.post(
            "/v1/chat/completions",
            json={"model": "fake-chat", "messages": [{"role": "user", "content": "x"}]},
        )
        waited = time.monotonic() - started
    first.join()
    return response, waited


def test_a_wait_beyond_the_queue_timeout_is_a_503_naming_the_model(
    proxy: ProxyRig, settings
) -> None:
    settings.QUEUE_TIMEOUT = 0.5
    response, waited = post_while_the_only_slot_is_busy(proxy)
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(settings.QUEUE_RETRY_AFTER)
    error = response.json()["error"]
    assert "fake-chat" in error["message"] and error["code"] == "model_busy"
    assert 0.4 < waited < 2.0


def test_a_full_queue_answers_503_at_once(proxy: ProxyRig, settings) -> None:
    settings.QUEUE_MAX_WAITING = 0
    response, waited = post_while_the_only_slot_is_busy(proxy)
    assert response.status_code == 503
    assert waited < 1.5  # not the QUEUE_TIMEOUT of 120 s
    assert "queue is full" in response.json()["error"]["message"]


def test_one_user_cannot_fill_a_models_queue(proxy: ProxyRig, settings) -> None:
    settings.QUEUE_MAX_WAITING_PER_USER = 2
    cap_backends(1)
    proxy.backend.behaviour.tokens = 10
    proxy.backend.behaviour.token_delay = 0.1
    results: dict[str, tuple] = {}
    key = backend_key(proxy)
    threads = [
        threading.Thread(
            target=stream_request,
            args=(proxy.server.url, proxy.key, f"A-{i}", results, f"A{i}"),
        )
        for i in range(3)  # one holds the slot, two wait
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while board.depth(key) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "x"}]}
    with proxy.http() as http:
        refused = http.post("/v1/chat/completions", json=body)
    bob_key = apikey_create(user=user_make(username="bob"), name="b").raw
    bob = threading.Thread(
        target=stream_request, args=(proxy.server.url, bob_key, "B", results, "B")
    )
    bob.start()
    for thread in [*threads, bob]:
        thread.join(timeout=30)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_waiting"
    assert "retry-after" in refused.headers
    # Others still find a place, and the user's waiting requests are served.
    assert all(status == 200 for _, status, _ in results.values())
    assert len(results) == 4


def test_backend_timeouts_leave_no_slot_held(proxy: ProxyRig, settings) -> None:
    settings.BACKEND_READ_TIMEOUT = 0.3
    cap_backends(2)
    proxy.backend.behaviour.hang = True
    with proxy.http() as http:
        statuses = [
            http.post(
                "/v1/chat/completions",
                json={
                    "model": "fake-chat",
                    "messages": [{"role": "user", "content": "x"}],
                },
            ).status_code
            for _ in range(5)
        ]
    assert statuses == [504] * 5
    client = redis.Redis.from_url(settings.REDIS_URL)
    # The last release goes within RELEASE_FLUSH_SECONDS (no request follows).
    deadline = time.monotonic() + 1
    while client.zcard(backend_key(proxy)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.zcard(backend_key(proxy)) == 0


def test_a_killed_process_gives_its_slots_back_within_the_lease(
    proxy: ProxyRig, server_processes
) -> None:
    cap_backends(2)
    doomed = server_processes(QUEUE_LEASE_SECONDS="2")
    survivor = server_processes(QUEUE_LEASE_SECONDS="2")
    proxy.backend.behaviour.tokens = 1000
    proxy.backend.behaviour.token_delay = 0.1
    results: dict[str, tuple] = {}
    for name in ("x", "y"):
        threading.Thread(
            target=stream_request,
            args=(doomed.url, proxy.key, name, results, name),
            daemon=True,
        ).start()
    proxy.backend.wait_for(lambda fake: len(fake.requests("/v1/chat/completions")) >= 2)
    doomed.kill()
    proxy.backend.behaviour.tokens = 2
    proxy.backend.behaviour.token_delay = 0
    started = time.monotonic()
    with httpx.Client(timeout=30) as http:
        response = http.post(
            survivor.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {proxy.key}"},
            json={"model": "fake-chat", "messages": [{"role": "user", "content": "z"}]},
        )
    assert response.status_code == 200
    assert time.monotonic() - started < 2 + 1.5


async def test_browser_chat_is_served_before_api_requests_and_users_take_turns() -> (
    None
):
    from apiproxy import slots

    queue = ModelQueue("portico:slots:test", cap=1)
    loop = asyncio.get_running_loop()
    waiters = [
        Waiter(1, False, loop.create_future()),
        Waiter(1, False, loop.create_future()),
        Waiter(2, False, loop.create_future()),
        Waiter(3, True, loop.create_future()),
    ]
    original = slots.slot_pool.try_acquire

    async def never(key: str, cap: int) -> None:
        return None

    slots.slot_pool.try_acquire = never  # type: ignore[method-assign]
    try:
        for waiter in waiters:
            queue.add(waiter)
        assert [queue.position(w) for w in waiters] == [2, 4, 3, 1]
        order = [queue._next() for _ in range(4)]
    finally:
        slots.slot_pool.try_acquire = original  # type: ignore[method-assign]
        queue.dispatcher.cancel()
    assert order == [waiters[3], waiters[0], waiters[2], waiters[1]]
