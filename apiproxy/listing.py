"""GET /v1/models and /v1/models/{id}: what this caller may use, in OpenAI's
shape plus Portico's metadata (context window, capabilities). What is listed
is what admission admits: both ask the one access rule (catalog.access)."""

from __future__ import annotations

import json
from typing import Any

from apiproxy.admission import model_not_found
from apiproxy.catalog import catalog
from apiproxy.exchange import Exchange
from apiproxy.http import json_send
from apiproxy.limits import limit_tables
from catalog.access import model_access, models_for
from catalog.snapshot import CatalogModel


def model_public(model: CatalogModel) -> dict[str, Any]:
    """OpenAI's four fields, then Portico's: what the model can do, its
    limits, the parameters its operators recommend, and whether it is ready
    now or will be loaded first (with how long that last took)."""
    entry: dict[str, Any] = {
        "id": model.public_id,
        "object": "model",
        "created": model.created,
        "owned_by": model.owned_by,
        "display_name": model.display_name or model.public_id,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "capabilities": sorted(model.capabilities),
        "recommended_params": model.recommended_params,
        "ready": model.ready,
        "load_seconds": None if model.ready else model.load_seconds,
    }
    if model.embedding_dimensions:
        entry["embedding_dimensions"] = model.embedding_dimensions
    return entry


async def models_list(exchange: Exchange) -> None:
    usable = models_for(
        exchange.principal,
        models=await catalog.current(),
        tables=await limit_tables.current(),
    )
    data = [model_public(model) for model in usable]
    body = json.dumps({"object": "list", "data": data}).encode()
    exchange.outcome.status = 200
    await json_send(
        exchange.send, status=200, body=body, headers=exchange.response_headers
    )


async def model_retrieve(exchange: Exchange, public_id: str) -> None:
    access = model_access(
        exchange.principal,
        public_id,
        models=await catalog.current(),
        tables=await limit_tables.current(),
    )
    if access.model is None:
        raise model_not_found(
            public_id, exchange.principal, requestable=access.requestable
        )
    exchange.outcome.status = 200
    body = json.dumps(model_public(access.model)).encode()
    await json_send(
        exchange.send, status=200, body=body, headers=exchange.response_headers
    )
