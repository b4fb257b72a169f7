"""Settings > Usage in plain words: how a request ended and where its token
counts came from, instead of the meter's codes (client_disconnect, 429, ...).
The codes stay in the CSV export, for tools."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()

# How a request ended (RequestOutcome.finish_reason).
ENDINGS = {
    "stop": "finished",
    "length": "cut off at the length limit",
    "tool_calls": "asked to call a tool",
    "function_call": "asked to call a tool",
    "content_filter": "withheld by the content filter",
    "client_disconnect": "stopped by you",
    "backend_error": "the model's server failed",
}
# Why Portico refused a request, by its HTTP status.
REFUSALS = {
    400: "refused: the request was not valid",
    401: "refused: the key was not accepted",
    403: "refused: not allowed",
    404: "refused: no such model",
    408: "refused: the request took too long to arrive",
    413: "refused: the request was too large",
    429: "refused: over your rate limit or quota",
}
SOURCES = {
    "reported": "reported by the model",
    "counted": "counted by Portico",
    "estimated": "estimated",
}


@register.filter
def outcome_words(record: Any) -> str:
    """One short phrase for how a usage record's request ended."""
    reason = getattr(record, "finish_reason", "") or ""
    status = int(getattr(record, "status", 0) or 0)
    if reason in ("client_disconnect", "backend_error"):
        return ENDINGS[reason]
    if reason in ENDINGS and status < 400:
        return ENDINGS[reason]
    if status >= 500:
        return "the model's server failed"
    if status >= 400:
        return REFUSALS.get(status, "refused")
    if reason:
        return reason.replace("_", " ")
    return "finished" if 200 <= status < 300 else "—"


@register.filter
def source_words(source: str) -> str:
    """Where a record's token counts came from."""
    return SOURCES.get(source, source)
