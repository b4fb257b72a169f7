"""Step 3, admit: may this request go ahead? The model (exists, allowed,
capable, in the caller's service class), the context window, and the rate
limits. Everything here reads in-memory snapshots; the only I/O is the
limiter's single Redis round trip."""

from __future__ import annotations

from accounts.selectors import KeyPrincipal
from apiproxy.catalog import CatalogModel, catalog
from apiproxy.errors import ProxyError
from apiproxy.exchange import Exchange
from apiproxy.limits import buckets_for, limit_tables
from apiproxy.parsing import ParsedRequest
from apiproxy.ratelimit import Bucket, rate_limiter
from apiproxy.routing import routes_for_class


async def service_class_resolve(exchange: Exchange) -> None:
    tables = await limit_tables.current()
    exchange.dedicated = not tables.dedicated_groups.isdisjoint(
        exchange.principal.group_ids
    )


def model_not_found(public_id: str) -> ProxyError:
    return ProxyError(
        404,
        f"The model '{public_id}' does not exist. List the available models "
        "with GET /v1/models.",
        code="model_not_found",
        param="model",
    )


async def model_admit(
    principal: KeyPrincipal, public_id: str, capability: str, *, dedicated: bool = False
) -> CatalogModel:
    """Step 3 (model part): the model exists, may be used, and can do this."""
    model = (await catalog.current()).get(public_id)
    if model is None:
        raise model_not_found(public_id)
    if not model.allowed_for(principal.group_ids):
        raise ProxyError(
            403,
            f"You are not allowed to use the model '{public_id}'. Ask the "
            "portal's operators for access.",
            type="permission_error",
            code="model_not_allowed",
            param="model",
        )
    if not principal.allows_model(public_id):
        raise ProxyError(
            403,
            f"This API key is limited to other models and may not use '{public_id}'.",
            type="permission_error",
            code="model_not_allowed",
            param="model",
        )
    if capability not in model.capabilities:
        raise ProxyError(
            501,
            f"The model '{public_id}' does not support {capability}. Models that "
            f"do are listed by GET /v1/models (see 'capabilities').",
            type="unsupported",
            code="unsupported_capability",
            param="model",
        )
    if model.routes and not routes_for_class(model.routes, dedicated=dedicated):
        raise ProxyError(
            403,
            f"The model '{public_id}' is offered in the dedicated (performance) "
            "class only. Request access in Settings > Access.",
            type="permission_error",
            code="model_requires_access",
            param="model",
        )
    if not model.routes:
        raise ProxyError(
            503,
            f"The model '{public_id}' is not served by any backend right now.",
            type="server_error",
            code="model_unavailable",
            headers=[(b"retry-after", b"30")],
        )
    return model


def context_fit(parsed: ParsedRequest, model: CatalogModel) -> None:
    """Refuse prompts that cannot fit; clamp the answer length to what fits."""
    if parsed.endpoint in ("embeddings",):
        return
    window = model.context_window
    if parsed.prompt_estimate >= window:
        raise ProxyError(
            400,
            f"This model's maximum context length is {window} tokens. Your "
            f"messages come to about {parsed.prompt_estimate} tokens. Shorten them.",
            code="context_length_exceeded",
            param="messages" if parsed.endpoint == "chat/completions" else "prompt",
        )
    ceiling = window - parsed.prompt_estimate
    if model.max_output_tokens:
        ceiling = min(ceiling, model.max_output_tokens)
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = parsed.body.get(name)
        if isinstance(value, int) and value > ceiling:
            parsed.body[name] = ceiling


async def rate_admit(exchange: Exchange, *, cost: int) -> list[Bucket]:
    """Step 3 (rate part): draw on the user's (and key's) budgets or refuse
    with OpenAI's 429 and headers; successful answers carry the figures too."""
    principal = exchange.principal
    tables = await limit_tables.current()
    buckets = buckets_for(
        tables,
        user_id=principal.user_id,
        group_ids=principal.group_ids,
        key_id=None if exchange.browser else principal.key_id,
        browser=exchange.browser,
    )
    verdict = await rate_limiter.admit(
        buckets, cost=cost, request_id=exchange.outcome.request_id
    )
    if not verdict.allowed:
        wait = max(1, -(-verdict.retry_after_ms // 1000))
        raise ProxyError(
            429,
            f"Rate limit exceeded: {verdict.limit_requests or 'your'} requests per "
            f"minute (tokens: {verdict.limit_tokens or 'unlimited'}). Try again in "
            f"{wait} s.",
            type="requests",
            code="rate_limit_exceeded",
            headers=verdict.headers(),
            outcome="rate_limited",
        )
    exchange.response_headers.extend(verdict.headers())
    return buckets
