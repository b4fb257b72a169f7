"""One log line per finished API request, on the logger "portico.requests".

The line is built from the RequestOutcome alone, field by field from a fixed
list: ids, model, status, tokens, timings. The outcome never holds a key, a
prompt or an answer, so none can reach the log however a request goes.

Plain format: `request request_id=req_... user_id=7 ... duration_ms=812`; with
LOG_FORMAT=json the message is "request" and the fields are keys of the JSON
object (portal.logformat). LOG_REQUESTS=false turns the line off.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from usage.outcome import RequestOutcome

logger = logging.getLogger("portico.requests")

# Values that need no quoting in the key=value form.
_BARE = re.compile(r"[\w.:/@+-]+")
# Model names come from clients (an unknown one is logged as asked for).
_MAX_TEXT = 200


def request_fields(outcome: RequestOutcome) -> dict[str, Any]:
    return {
        "request_id": outcome.request_id,
        "user_id": outcome.user_id,
        "key_id": outcome.key_id,
        "source": outcome.source,
        "endpoint": outcome.endpoint[:_MAX_TEXT],
        "model": outcome.model[:_MAX_TEXT],
        "backend_id": outcome.backend_id,
        "stream": outcome.stream,
        "status": outcome.status,
        "finish_reason": outcome.finish_reason,
        "error_code": outcome.error_code,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "usage_source": outcome.usage_source,
        "ttft_ms": outcome.ttft_ms,
        "duration_ms": outcome.duration_ms,
        "retry_count": outcome.retry_count,
    }


def _value(value: Any) -> str:
    kind = type(value)
    if kind is int:
        return str(value)
    if value is None:
        return "-"
    if kind is bool:
        return "true" if value else "false"
    text = str(value)
    # Quoted and escaped otherwise: a client's model name cannot forge a field
    # or a second line.
    return text if _BARE.fullmatch(text) else json.dumps(text)


def request_log(outcome: RequestOutcome) -> None:
    """About 20 microseconds of the event loop's time per request, after the
    response has ended; the JSON format skips the key=value text."""
    if not settings.LOG_REQUESTS or not logger.isEnabledFor(logging.INFO):
        return
    fields = request_fields(outcome)
    if settings.LOG_FORMAT == "json":
        logger.info("request", extra={"fields": fields})
        return
    text = " ".join([f"{name}={_value(value)}" for name, value in fields.items()])
    logger.info("request %s", text, extra={"fields": fields})


def media_fetch_log(
    *, request_id: str, host: str, outcome: str, size: int, duration_ms: int
) -> None:
    """One line per media URL Portico fetched for a request. The host only:
    a URL's path and query can hold tokens (signed links), so they are never
    logged."""
    if not settings.LOG_REQUESTS or not logger.isEnabledFor(logging.INFO):
        return
    fields = {
        "request_id": request_id,
        "host": host[:_MAX_TEXT],
        "outcome": outcome,
        "bytes": size,
        "duration_ms": duration_ms,
    }
    if settings.LOG_FORMAT == "json":
        logger.info("media_fetch", extra={"fields": fields})
        return
    text = " ".join([f"{name}={_value(value)}" for name, value in fields.items()])
    logger.info("media_fetch %s", text, extra={"fields": fields})
