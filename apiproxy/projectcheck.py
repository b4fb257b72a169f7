"""Step 3 for project keys: the project's allocation instead of the owner's
own quota (projects.allocation's cached figures), and the OpenAI errors that
refuse a request.

Tokens used up (the project's window, or the member's cap): 429
`insufficient_quota`, like a personal quota, with `x-should-retry: false`.
A project outside its dates, or one that no longer exists: 403
`project_inactive`. A key whose owner is no longer a member (normally revoked
already when they were removed): 403 `not_project_member`.
"""

from __future__ import annotations

from dataclasses import replace

from django.utils import timezone

from accounts.selectors import Principal
from apiproxy.errors import ProxyError
from projects.allocation import (
    EXHAUSTED,
    EXPIRED,
    MEMBER_CAP,
    NOT_MEMBER,
    NOT_STARTED,
    AllocationState,
    allocation_check,
    project_grants_dedicated,
)
from projects.windows import next_tokens_at

NO_RETRY = (b"x-should-retry", b"false")
WEIGHTS = "tokens count times each model's weight"


async def project_admit(
    *, project_id: int, user_id: int, model_weight: float
) -> list[tuple[bytes, bytes]]:
    """The headers a served answer carries, or the ProxyError refusing it."""
    state = await allocation_check(
        project_id=project_id, user_id=user_id, model_weight=model_weight
    )
    if state.refusal is not None:
        raise project_refused(state)
    return state.headers()


def project_refused(state: AllocationState) -> ProxyError:
    if state.refusal in (EXHAUSTED, MEMBER_CAP):
        return ProxyError(
            429,
            _exhausted_message(state),
            type="insufficient_quota",
            code="insufficient_quota",
            headers=[NO_RETRY, *state.headers()],
            outcome="insufficient_quota",
        )
    if state.refusal == NOT_MEMBER:
        assert state.terms is not None
        return ProxyError(
            403,
            f"You are no longer a member of project '{state.terms.name}', so "
            "its keys no longer work for you. Use a personal key.",
            type="permission_error",
            code="not_project_member",
            headers=[NO_RETRY],
        )
    return ProxyError(
        403,
        _inactive_message(state),
        type="permission_error",
        code="project_inactive",
        headers=[NO_RETRY],
    )


def _inactive_message(state: AllocationState) -> str:
    terms = state.terms
    if terms is None:
        return "The project this key belongs to no longer exists. Use a personal key."
    if state.refusal == NOT_STARTED:
        return (
            f"Project '{terms.name}' starts on {terms.starts_on:%Y-%m-%d}; its "
            "keys work from then. Until then, use a personal key."
        )
    assert state.refusal == EXPIRED
    return (
        f"Project '{terms.name}' ended on {terms.ends_on:%Y-%m-%d}: its allocation "
        "can no longer be used. Use a personal key, or ask the project's "
        "principal investigator to have the allocation extended."
    )


def _exhausted_message(state: AllocationState) -> str:
    terms, window = state.terms, state.window
    assert terms is not None and window is not None
    then = next_tokens_at(terms, timezone.now())
    if then is not None:
        more = f"the next instalment comes on {then:%Y-%m-%d}"
    else:
        more = (
            f"no more come before the allocation ends on {terms.ends_on:%Y-%m-%d}: "
            "ask the project's principal investigator for more"
        )
    if state.refusal == MEMBER_CAP:
        return (
            f"You have used your share of project '{terms.name}': each member may "
            f"use {terms.member_cap_tokens:,} tokens for this period ({WEIGHTS}); "
            f"{more}."
        )
    return (
        f"Project '{terms.name}' has used its allocation of {window.limit:,} tokens "
        f"for this period ({WEIGHTS}); {more}."
    )


async def project_class_apply(principal: Principal) -> Principal:
    """A key of a running project that grants the dedicated class carries it
    (the access rule and routing read `principal.dedicated`)."""
    if principal.project_id is None or principal.dedicated:
        return principal
    if await project_grants_dedicated(
        project_id=principal.project_id, user_id=principal.user_id
    ):
        return replace(principal, dedicated=True)
    return principal
