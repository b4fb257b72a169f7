"""The proxy's snapshot: plain frozen data, complete, and cheap to build."""

from __future__ import annotations

import json
import pickle
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group

from catalog.models import Backend, Deployment
from catalog.selectors import catalog_snapshot
from catalog.snapshot import CatalogModel, Route
from tests.factories import backend_make, model_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_backends() -> None:
    gpu01 = backend_make(
        name="gpu01", base_url="http://gpu01:8000/v1", api_key="sk-gpu01"
    )
    gpu02 = backend_make(
        name="gpu02", base_url="http://gpu02:8000/v1", max_concurrency=8
    )
    lab = Group.objects.create(name="lab")
    llama = model_make(
        public_id="llama",
        backend=gpu01,
        upstream_model="meta-llama/Llama-3.1-8B",
        everyone=False,
        context_window=32768,
        max_output_tokens=4096,
        supports_vision=True,
        quota_weight=Decimal("2.5"),
        recommended_params={"temperature": 0.7},
        display_name="Llama 3.1 8B",
    )
    llama.access_groups.add(lab)
    Deployment.objects.create(model=llama, backend=gpu02, upstream_model="llama31")
    model_make(
        public_id="bge-embed",
        backend=gpu02,
        supports_chat=False,
        supports_completions=False,
        supports_embeddings=True,
    )


def test_it_describes_each_model_with_its_routes_and_groups(two_backends: None) -> None:
    snapshot = {entry.public_id: entry for entry in catalog_snapshot()}
    assert set(snapshot) == {"llama", "bge-embed"}
    llama = snapshot["llama"]
    assert isinstance(llama, CatalogModel)
    assert llama.capabilities == {
        "chat",
        "completions",
        "vision",
        "tools",
        "json_schema",
    }
    assert (llama.context_window, llama.max_output_tokens) == (32768, 4096)
    assert llama.everyone is False
    assert llama.group_ids == {Group.objects.get(name="lab").pk}
    assert (llama.quota_weight, llama.recommended_params) == (2.5, {"temperature": 0.7})
    assert llama.display_name == "Llama 3.1 8B"
    assert llama.created > 0 and llama.owned_by
    assert llama.routes == (
        Route(
            backend_id=llama.routes[0].backend_id,
            backend_name="gpu01",
            base_url="http://gpu01:8000/v1",
            api_key="sk-gpu01",
            upstream_model="meta-llama/Llama-3.1-8B",
            max_concurrency=4,
            healthy=True,
            pool="shared",
        ),
        Route(
            backend_id=llama.routes[1].backend_id,
            backend_name="gpu02",
            base_url="http://gpu02:8000/v1",
            api_key=None,
            upstream_model="llama31",
            max_concurrency=8,
            healthy=True,
            pool="shared",
        ),
    )
    assert snapshot["bge-embed"].capabilities == {"embeddings"}
    assert snapshot["bge-embed"].display_name == "bge-embed"


def test_it_answers_who_may_use_a_model(two_backends: None) -> None:
    llama = next(e for e in catalog_snapshot() if e.public_id == "llama")
    lab_id = Group.objects.get(name="lab").pk
    assert llama.allowed_for({lab_id, 999})
    assert not llama.allowed_for(())


def test_it_leaves_out_dead_routes_and_keeps_unhealthy_ones(two_backends: None) -> None:
    Deployment.objects.filter(backend__name="gpu02").update(served=False)
    Backend.objects.filter(name="gpu01").update(healthy=False)
    snapshot = {entry.public_id: entry for entry in catalog_snapshot()}
    assert "bge-embed" not in snapshot  # its only route is gone
    assert [(r.backend_name, r.healthy) for r in snapshot["llama"].routes] == [
        ("gpu01", False)
    ]


def test_it_is_frozen_plain_data_that_keeps_keys_out_of_repr(
    two_backends: None,
) -> None:
    llama = next(e for e in catalog_snapshot() if e.public_id == "llama")
    with pytest.raises(AttributeError):
        llama.context_window = 1  # type: ignore[misc]
    assert "sk-gpu01" not in repr(llama)
    assert pickle.loads(pickle.dumps(llama)) == llama
    data = json.loads(json.dumps(llama.as_dict()))
    assert data["capabilities"] == [
        "chat",
        "completions",
        "json_schema",
        "tools",
        "vision",
    ]
    assert data["routes"][0]["api_key"] == "sk-gpu01"


def test_it_costs_four_queries_whatever_the_catalog_size(
    two_backends: None, django_assert_num_queries: Any
) -> None:
    for index in range(10):
        model_make(public_id=f"extra-{index}")
    with django_assert_num_queries(4):
        assert len(catalog_snapshot()) == 12
