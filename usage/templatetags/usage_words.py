"""Settings > Usage in plain words: how a request ended and where its token
counts came from, instead of the meter's codes (client_disconnect, 429, ...).
The codes stay in the CSV export, for tools."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext, gettext_lazy

register = template.Library()

# How a request ended (RequestOutcome.finish_reason).
ENDINGS = {
    "stop": gettext_lazy("finished"),
    "length": gettext_lazy("cut off at the length limit"),
    "tool_calls": gettext_lazy("asked to call a tool"),
    "function_call": gettext_lazy("asked to call a tool"),
    "content_filter": gettext_lazy("withheld by the content filter"),
    "client_disconnect": gettext_lazy("stopped by you"),
    "backend_error": gettext_lazy("the model's server failed"),
}
# Why Portico refused a request, by its HTTP status.
REFUSALS = {
    400: gettext_lazy("refused: the request was not valid"),
    401: gettext_lazy("refused: the key was not accepted"),
    403: gettext_lazy("refused: not allowed"),
    404: gettext_lazy("refused: no such model"),
    408: gettext_lazy("refused: the request took too long to arrive"),
    413: gettext_lazy("refused: the request was too large"),
    429: gettext_lazy("refused: over your rate limit or quota"),
}
SOURCES = {
    "reported": gettext_lazy("reported by the model"),
    "counted": gettext_lazy("counted by Portico"),
    "estimated": gettext_lazy("estimated"),
}


@register.filter
def outcome_words(record: Any) -> str:
    """One short phrase for how a usage record's request ended."""
    reason = getattr(record, "finish_reason", "") or ""
    status = int(getattr(record, "status", 0) or 0)
    if reason in ("client_disconnect", "backend_error"):
        return str(ENDINGS[reason])
    if reason in ENDINGS and status < 400:
        return str(ENDINGS[reason])
    if status >= 500:
        return gettext("the model's server failed")
    if status >= 400:
        return str(REFUSALS.get(status, gettext("refused")))
    if reason:
        return reason.replace("_", " ")
    return gettext("finished") if 200 <= status < 300 else "—"


@register.filter
def source_words(source: str) -> str:
    """Where a record's token counts came from."""
    return str(SOURCES.get(source, source))
