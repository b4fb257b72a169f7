"""GET /v1/models and /v1/models/{id}: what this caller may use, in OpenAI's
shape plus Portico's metadata (context window, capabilities)."""

from __future__ import annotations

import json
from typing import Any

from apiproxy.admission import model_not_found, service_class_resolve
from apiproxy.catalog import CatalogModel, catalog
from apiproxy.exchange import Exchange
from apiproxy.http import json_send
from apiproxy.routing import routes_for_class


def model_public(model: CatalogModel) -> dict[str, Any]:
    return {
        "id": model.public_id,
        "object": "model",
        "created": model.created,
        "owned_by": model.owned_by,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "capabilities": sorted(model.capabilities),
    }


def _visible(model: CatalogModel, exchange: Exchange) -> bool:
    principal = exchange.principal
    return (
        model.allowed_for(principal.group_ids)
        and principal.allows_model(model.public_id)
        and bool(routes_for_class(model.routes, dedicated=exchange.dedicated))
    )


async def models_list(exchange: Exchange) -> None:
    models = await catalog.current()
    await service_class_resolve(exchange)
    data = [
        model_public(model)
        for model in sorted(models.values(), key=lambda m: m.public_id)
        if _visible(model, exchange)
    ]
    body = json.dumps({"object": "list", "data": data}).encode()
    exchange.outcome.status = 200
    await json_send(
        exchange.send, status=200, body=body, headers=exchange.response_headers
    )


async def model_retrieve(exchange: Exchange, public_id: str) -> None:
    models = await catalog.current()
    await service_class_resolve(exchange)
    model = models.get(public_id)
    if model is None or not _visible(model, exchange):
        raise model_not_found(public_id)
    exchange.outcome.status = 200
    body = json.dumps(model_public(model)).encode()
    await json_send(
        exchange.send, status=200, body=body, headers=exchange.response_headers
    )
