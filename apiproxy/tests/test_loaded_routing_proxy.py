"""Loaded-model-aware routing through the real proxy, against fake Ollamas on
loopback that hold one model each and load others slowly (tests/fakeollama.py).
Backends are named so that least in flight, breaking a tie by name, would pick
gpu-a: each test shows that the picker did something else, and why."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apiproxy.catalog import catalog
from apiproxy.routing import picker
from catalog.models import Backend
from catalog.services import backend_discover_models
from tests.fakeollama import FakeOllama
from tests.fixtures_proxy import ProxyRig, model_register

MESSAGES = [{"role": "user", "content": "Say something."}]


@pytest.fixture
def ollamas(proxy: ProxyRig) -> Iterator[Callable[..., FakeOllama]]:
    """Start fake Ollamas holding the given models, registered as gpu-a, gpu-b,
    ... (discovery reads their /api/ps); the picker starts knowing nothing."""
    started: list[FakeOllama] = []
    picker.forget()

    def start(*held: str) -> FakeOllama:
        fake = FakeOllama(
            models=["alpha", "beta", "gamma"], capacity=1, load_seconds=0.3
        ).start()
        fake.preload(*held)
        started.append(fake)
        model_register(fake, name=f"gpu-{'abcd'[len(started) - 1]}")  # type: ignore[arg-type]
        return fake

    yield start
    picker.forget()
    for fake in started:
        fake.close()


def chat(rig: ProxyRig, model: str, **options: Any) -> Any:
    return rig.openai().chat.completions.create(
        model=model, messages=MESSAGES, **options
    )


def slow_stream(rig: ProxyRig, model: str, fake: FakeOllama) -> Any:
    """A stream that holds `model` busy on `fake` for a second, running in a
    thread; returns once `fake` is generating it."""
    fake.token_delay = 0.12
    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(lambda: list(chat(rig, model, stream=True)))
    pool.shutdown(wait=False)
    deadline = time.monotonic() + 5
    while not any(r.model == model and r.started_at for r in fake.served):
        assert time.monotonic() < deadline, "the stream never reached the backend"
        time.sleep(0.01)
    return future


def test_discovery_tells_the_proxy_which_backend_holds_what(
    proxy: ProxyRig, ollamas: Callable[..., FakeOllama]
) -> None:
    ollamas("beta")
    ollamas("alpha")
    software = dict(Backend.objects.values_list("name", "software"))
    assert software == {"fake": "", "gpu-a": "ollama", "gpu-b": "ollama"}
    models = {m.id: m.model_extra for m in proxy.openai().models.list()}
    assert models["alpha"]["ready"] and models["beta"]["ready"]
    assert not models["gamma"]["ready"]  # held nowhere
    assert models["fake-chat"]["ready"]  # not a backend that loads on demand


def test_a_model_goes_where_it_is_held_even_when_elsewhere_is_idler(
    proxy: ProxyRig, ollamas: Callable[..., FakeOllama]
) -> None:
    gpu_a, gpu_b = ollamas("beta"), ollamas("alpha")
    busy = slow_stream(proxy, "alpha", gpu_b)
    # gpu-a has nothing in flight for alpha, gpu-b has one: gpu-b holds it.
    assert chat(proxy, "alpha").choices[0].message.content
    busy.result(timeout=10)
    assert gpu_b.served_models() == ["alpha", "alpha"]
    assert gpu_a.served == [] and gpu_a.loads == [] and gpu_b.loads == []


def test_without_the_preference_a_tie_in_flight_makes_gpu_a_load(
    proxy: ProxyRig, ollamas: Callable[..., FakeOllama], settings: Any
) -> None:
    settings.ROUTING_PREFER_LOADED = False
    gpu_a, gpu_b = ollamas("beta"), ollamas("alpha")
    chat(proxy, "alpha")
    assert gpu_a.served_models() == ["alpha"] and gpu_b.served == []
    assert [(load.model, load.evicted) for load in gpu_a.loads] == [("alpha", "beta")]


def test_a_model_nobody_holds_is_loaded_where_it_evicts_no_busy_one(
    proxy: ProxyRig, ollamas: Callable[..., FakeOllama]
) -> None:
    gpu_a, gpu_b = ollamas("alpha"), ollamas("beta")
    busy = slow_stream(proxy, "alpha", gpu_a)
    chat(proxy, "gamma")
    assert gpu_a.served_models() == ["alpha"] and gpu_a.loads == []
    assert [(load.model, load.evicted) for load in gpu_b.loads] == [("gamma", "beta")]
    busy.result(timeout=10)
    # Both idle now, and the catalog (no health check since) still says
    # gamma is held nowhere: the proxy knows better and stays on gpu-b.
    chat(proxy, "gamma")
    assert gpu_b.served_models() == ["gamma", "gamma"]
    assert len(gpu_b.loads) == 1 and gpu_a.loads == []


def test_a_measured_load_reaches_v1_models_after_the_next_check(
    proxy: ProxyRig, ollamas: Callable[..., FakeOllama]
) -> None:
    gpu_a = ollamas("alpha")
    assert list(chat(proxy, "beta", stream=True))  # loads beta, evicting alpha
    chat(proxy, "alpha")  # and back: beta is held nowhere now
    assert [load.model for load in gpu_a.loads] == ["beta", "alpha"]
    backend_discover_models(backend=Backend.objects.get(name="gpu-a"))
    catalog.invalidate()
    models = {m.id: m.model_extra for m in proxy.openai().models.list()}
    beta = models["beta"]
    assert beta["ready"] is False
    # Time to first token of the request that made the load: at least the
    # fake's 0.3 s load, and not much more.
    assert 0.3 <= beta["load_seconds"] < 2.0
    assert models["alpha"]["ready"] is True and models["alpha"]["load_seconds"] is None
    single = proxy.openai().models.retrieve("beta").model_extra
    assert single["load_seconds"] == beta["load_seconds"]
