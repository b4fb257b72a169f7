"""What is known about a request when it ends: plain data that the proxy fills
in and the meter reads (usage.metering turns it into a row)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(slots=True)
class RequestOutcome:
    request_id: str
    endpoint: str
    source: str = "api"  # "api" or "browser"
    user_id: int | None = None
    key_id: int | None = None
    project_id: int | None = None  # the project a project key bills
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
    # Of the completion tokens, those spent thinking (a part, never added on).
    reasoning_tokens: int = 0
    usage_source: str = "estimated"  # reported, counted, estimated
    retry_count: int = 0
    # The model's quota weight when the request was admitted: tokens are
    # billed at the weight the user was told, whatever staff change later.
    quota_weight: float = 1.0
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
