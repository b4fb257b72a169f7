"""Step 3, admit: may this request go ahead?

One function, `admit`, for every endpoint and both doors. In order:

1. the model: the access rule (catalog.access) over the cached catalog and
   limit tables decides whether the principal may use it, and in which
   service class; a model the principal may not use is answered like one
   that does not exist;
2. the capability the endpoint needs;
3. the quota (usage.quota's cached figures), or for a project key its
   project's allocation instead (apiproxy.projectcheck); the model's weight
   is recorded on the outcome, so the request is billed at the weight it was
   admitted at;
4. the rate limits: the limiter's single Redis round trip;
5. the context window (requests with a parsed body only): refused only
   where the prompt cannot fit (apiproxy.contextfit), which may ask the
   backend's tokenizer, so it comes after the limits; a refusal here gives
   back the tokens the limiter charged.

The parts it calls (the access rule, the quota check) return decisions, not
HTTP errors; this function turns their refusals into OpenAI errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts.selectors import Principal
from apiproxy.capabilitycheck import capabilities_check
from apiproxy.catalog import catalog
from apiproxy.contextfit import context_fit
from apiproxy.errors import ProxyError
from apiproxy.exchange import Exchange
from apiproxy.limits import buckets_for, limit_tables
from apiproxy.parsing import ParsedRequest
from apiproxy.projectcheck import project_admit
from apiproxy.ratelimit import Bucket, rate_limiter
from catalog.access import ModelAccess, model_access
from catalog.snapshot import CatalogModel, LimitTables
from usage.periods import local_zone
from usage.quota import QuotaState, quota_check

UNKNOWN_MODEL = "(unknown model)"


@dataclass(frozen=True, slots=True)
class Admitted:
    model: CatalogModel
    buckets: list[Bucket]


async def admit(
    exchange: Exchange,
    *,
    public_model: str,
    capability: str,
    cost: int,
    parsed: ParsedRequest | None = None,
) -> Admitted:
    """Admit the request or raise the ProxyError that refuses it. `cost` is
    the token estimate the rate limiter charges now (settled at the end)."""
    principal = exchange.principal
    tables = await limit_tables.current()
    access = model_access(
        principal, public_model, models=await catalog.current(), tables=tables
    )
    exchange.dedicated = access.dedicated
    if access.model is None:
        # Metered under one name: made-up model strings must not grow the
        # usage tables and metric labels without bound, nor tell apart
        # models the caller may not see.
        exchange.outcome.model = UNKNOWN_MODEL
    model = _model_checked(access, principal, public_model, capability)
    if parsed is not None:
        capabilities_check(parsed, model)
    exchange.outcome.quota_weight = model.quota_weight
    exchange.response_headers.extend(
        await _budget_admit(principal, model_weight=model.quota_weight)
    )
    # The rate limit before the context check: the check may ask the
    # backend's tokenizer, and a caller over their limit must not reach the
    # backend at all.
    buckets = await rate_admit(exchange, cost=cost, tables=tables)
    if parsed is not None:
        try:
            await context_fit(parsed, model)
        except ProxyError:
            # The request counts; its estimate, which for a prompt too long
            # for the window is large, does not eat the caller's tokens.
            rate_limiter.charge(buckets, -cost)
            raise
    return Admitted(model=model, buckets=buckets)


async def _budget_admit(
    principal: Principal, *, model_weight: float
) -> list[tuple[bytes, bytes]]:
    """The budget the request draws on: a project key draws on its project's
    allocation and only on it, never on its owner's own quota (which neither
    refuses nor limits it); any other request on the user's own quota."""
    if principal.project_id is not None:
        return await project_admit(
            project_id=principal.project_id,
            user_id=principal.user_id,
            model_weight=model_weight,
        )
    quota = await quota_check(
        user_id=principal.user_id,
        group_ids=principal.group_ids,
        model_weight=model_weight,
    )
    if quota.exhausted:
        raise quota_exhausted(quota)
    return quota.headers()


def model_not_found(
    public_id: str, principal: Principal, *, requestable: bool = False
) -> ProxyError:
    """The same answer for a model that does not exist and one the principal
    may not use, so that names cannot be probed; only where asking for a
    class would open the model does the message say how."""
    message = f"The model '{public_id}' does not exist or you do not have access to it."
    if requestable:
        message += (
            " It is offered to a service class you can ask to join: request "
            "access in Settings > Access."
        )
    else:
        message += " List the models you may use with GET /v1/models."
    if principal.allowed_models is not None:
        allowed = ", ".join(principal.allowed_models) or "none"
        message += f" This API key may use only: {allowed}."
    return ProxyError(404, message, code="model_not_found", param="model")


def _model_checked(
    access: ModelAccess, principal: Principal, public_id: str, capability: str
) -> CatalogModel:
    model = access.model
    if model is None:
        raise model_not_found(public_id, principal, requestable=access.requestable)
    if capability not in model.capabilities:
        raise ProxyError(
            501,
            f"The model '{public_id}' does not support {capability}. Models that "
            f"do are listed by GET /v1/models (see 'capabilities').",
            type="unsupported",
            code="unsupported_capability",
            param="model",
            # Retrying cannot help: the model does not serve this endpoint.
            headers=[(b"x-should-retry", b"false")],
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


def quota_exhausted(state: QuotaState) -> ProxyError:
    assert state.resets_at is not None and state.limit is not None
    reset = state.resets_at.astimezone(local_zone())
    return ProxyError(
        429,
        f"You have used your quota of {state.limit:,} tokens per {state.period} "
        f"(tokens count times each model's weight). It resets at "
        f"{reset:%Y-%m-%d %H:%M} {reset.tzname()}. Ask the portal's operators "
        "if you need more.",
        type="insufficient_quota",
        code="insufficient_quota",
        headers=[(b"x-should-retry", b"false"), *state.headers()],
        outcome="insufficient_quota",
    )


async def rate_admit(
    exchange: Exchange, *, cost: int, tables: LimitTables
) -> list[Bucket]:
    """Draw on the user's (and key's) budgets or refuse with OpenAI's 429 and
    headers; successful answers carry the figures too."""
    principal = exchange.principal
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
