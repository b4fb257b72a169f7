"""What the proxy knows about a request when it ends, handed to the meter."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from apiproxy.metrics import outcome_observe
from apiproxy.requestlog import request_log

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class RequestOutcome:
    request_id: str
    endpoint: str
    source: str = "api"  # "api" or "browser"
    user_id: int | None = None
    key_id: int | None = None
    model: str = ""
    backend_id: int | None = None
    stream: bool = False
    status: int = 0
    # stop, length, tool_calls, ... or client_disconnect, backend_error, rejected
    finish_reason: str = ""
    # The OpenAI error code Portico answered with (backend_unreachable, ...).
    error_code: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_source: str = "estimated"  # reported, counted, estimated
    retry_count: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_monotonic: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    ended_at: float | None = None

    @property
    def ttft_ms(self) -> int | None:
        if self.first_token_at is None:
            return None
        return round((self.first_token_at - self.started_monotonic) * 1000)

    @property
    def duration_ms(self) -> int:
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return round((end - self.started_monotonic) * 1000)


def outcome_submit(outcome: RequestOutcome, *, meter: bool = True) -> None:
    """Count the request in the metrics, write its log line and (with `meter`)
    hand it to the meter. Never blocks and never raises: none of this may slow
    or break a response (the buffer writes in batches)."""
    from usage.buffer import usage_buffer

    if outcome.ended_at is None:
        outcome.ended_at = time.monotonic()
    try:
        outcome_observe(outcome)
        request_log(outcome)
    except Exception:
        logger.exception("metrics or log line of %s failed", outcome.request_id)
    if meter:
        usage_buffer.add(outcome)
