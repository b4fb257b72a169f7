"""The route picker's choice among backends that load models on demand
(apiproxy.routing), on plain snapshot data: no servers, no database."""

from __future__ import annotations

from typing import Any

import pytest

from apiproxy.routing import RoutePicker
from catalog.snapshot import CatalogModel, Route


def route(backend_id: int, model: str = "alpha", **fields: Any) -> Route:
    values: dict[str, Any] = {
        "backend_id": backend_id,
        "backend_name": f"gpu{backend_id}",
        "base_url": f"http://gpu{backend_id}/v1",
        "api_key": None,
        "upstream_model": model,
        "max_concurrency": 4,
        "healthy": True,
        "software": "ollama",
        "loaded": False,
    }
    return Route(**(values | fields))


def model(*routes: Route, name: str = "alpha") -> CatalogModel:
    return CatalogModel(
        public_id=name,
        context_window=8192,
        max_output_tokens=None,
        capabilities=frozenset({"chat"}),
        everyone=True,
        group_ids=frozenset(),
        routes=routes,
        created=0,
        owned_by="test",
    )


@pytest.fixture
def picker() -> RoutePicker:
    return RoutePicker()


def test_other_backends_are_balanced_by_least_in_flight_as_before(
    picker: RoutePicker,
) -> None:
    a, b = route(1, software="vllm", loaded=None), route(2, loaded=None)
    assert picker.choose(model(a, b)) == a  # a tie: the first
    picker.acquire(a)
    assert picker.choose(model(a, b)) == b
    picker.acquire(b)
    picker.acquire(b)
    assert picker.choose(model(a, b)) == a
    assert picker.busy == {} and picker.seen_at == {}  # nothing else kept


def test_a_backend_holding_the_model_wins_over_fewer_in_flight(
    picker: RoutePicker,
) -> None:
    a, b = route(1), route(2, loaded=True)
    picker.acquire(b)
    picker.acquire(b)
    assert picker.choose(model(a, b)) == b


def test_a_full_backend_holding_the_model_gives_way_to_an_idle_one(
    picker: RoutePicker,
) -> None:
    a, b = route(1), route(2, loaded=True, max_concurrency=2)
    picker.acquire(b)
    picker.acquire(b)
    assert picker.choose(model(a, b)) == a


def test_a_model_nobody_holds_is_loaded_where_nothing_is_busy(
    picker: RoutePicker,
) -> None:
    busy_elsewhere = route(1, "beta", loaded=True)
    picker.acquire(busy_elsewhere)
    a, b = route(1, "gamma"), route(2, "gamma")
    assert picker.choose(model(a, b, name="gamma")) == b


def test_when_every_backend_is_busy_the_load_disturbs_the_fewest(
    picker: RoutePicker,
) -> None:
    for _ in range(3):
        picker.acquire(route(1, "beta", loaded=True))
    picker.acquire(route(2, "delta", loaded=True))
    a, b = route(1, "gamma"), route(2, "gamma")
    assert picker.choose(model(a, b, name="gamma")) == b


def test_what_it_sent_counts_as_held_and_a_load_evicts_the_rest(
    picker: RoutePicker,
) -> None:
    # The snapshot says gpu1 holds alpha; the proxy then loads beta there.
    alpha_1, alpha_2 = route(1, loaded=True), route(2)
    beta_1, beta_2 = route(1, "beta"), route(2, "beta")
    assert picker.choose(model(alpha_1, alpha_2)) == alpha_1
    picker.acquire(beta_1)  # a load: gpu1 was not believed to hold beta
    assert picker.loading == {(1, "beta"): picker.switched_at[1]}
    picker.release(beta_1)
    # beta stays where it was loaded although both gpus are idle now ...
    assert picker.choose(model(beta_1, beta_2, name="beta")) == beta_1
    # ... and alpha is no longer believed held on gpu1: both would load it,
    # so the first idle one takes it.
    now = picker.switched_at[1] + 1
    assert not picker.believed_loaded(alpha_1, now)


def test_a_load_is_measured_once_from_send_to_first_token(
    picker: RoutePicker,
) -> None:
    beta = route(1, "beta")
    picker.acquire(beta)
    assert picker.load_measured(beta, sent_at=10.0, first_token_at=12.5) == 2.5
    assert picker.load_measured(beta, sent_at=20.0, first_token_at=20.1) is None
    picker.release(beta)
    picker.acquire(beta)  # held now: no load, nothing to measure
    assert picker.load_measured(beta, sent_at=30.0, first_token_at=30.1) is None


def test_a_failed_load_is_not_measured_by_the_next_request(
    picker: RoutePicker,
) -> None:
    beta = route(1, "beta")
    picker.acquire(beta)
    picker.release(beta)  # failed before a first token
    picker.acquire(beta)
    assert picker.load_measured(beta, sent_at=1.0, first_token_at=1.1) is None


def test_with_the_preference_off_it_is_least_in_flight(
    picker: RoutePicker, settings: Any
) -> None:
    settings.ROUTING_PREFER_LOADED = False
    a, b = route(1), route(2, loaded=True)
    picker.acquire(b)
    assert picker.choose(model(a, b)) == a
