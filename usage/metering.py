"""A metered request as plain data: what the buffer holds, the spool file
stores and the writer inserts.

Built from the proxy's RequestOutcome once the request has ended; monotonic
clock readings become milliseconds here, so a row means the same in any process
(a spool file may be replayed by another one).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from usage.outcome import RequestOutcome

CLIENTS = ("api", "browser")
USAGE_SOURCES = ("reported", "counted", "estimated")


@dataclass(slots=True)
class MeteredRow:
    request_id: str
    user_id: int
    key_id: int | None
    model: str
    backend_id: int | None
    endpoint: str
    client: str
    stream: bool
    status: int
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    usage_source: str
    weighted_tokens: int
    ttft_ms: int | None
    duration_ms: int
    retry_count: int
    started_at: datetime
    # Last, with a default: rows spooled before projects existed still load.
    project_id: int | None = None
    # Likewise: rows spooled before reasoning tokens were metered still load.
    reasoning_tokens: int = 0

    def to_json(self) -> str:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> MeteredRow:
        data: dict[str, Any] = json.loads(line)
        data["started_at"] = datetime.fromisoformat(data["started_at"])
        return cls(**data)


def weighted(prompt_tokens: int, completion_tokens: int, weight: float) -> int:
    """Tokens as they count against a quota: every token times the weight."""
    return max(0, round((max(0, prompt_tokens) + max(0, completion_tokens)) * weight))


def row_from_outcome(outcome: RequestOutcome) -> MeteredRow:
    """The row for an ended request, billed at the weight it was admitted at."""
    assert outcome.user_id is not None, "only requests of a known user are metered"
    client = outcome.source if outcome.source in CLIENTS else "api"
    source = outcome.usage_source
    return MeteredRow(
        request_id=outcome.request_id,
        user_id=outcome.user_id,
        key_id=None if client == "browser" else outcome.key_id,
        model=outcome.model,
        backend_id=outcome.backend_id,
        endpoint=outcome.endpoint,
        client=client,
        stream=outcome.stream,
        status=outcome.status,
        finish_reason=outcome.finish_reason,
        prompt_tokens=max(0, outcome.prompt_tokens),
        completion_tokens=max(0, outcome.completion_tokens),
        usage_source=source if source in USAGE_SOURCES else "estimated",
        weighted_tokens=weighted(
            outcome.prompt_tokens, outcome.completion_tokens, outcome.quota_weight
        ),
        ttft_ms=outcome.ttft_ms,
        duration_ms=outcome.duration_ms,
        retry_count=outcome.retry_count,
        started_at=outcome.started_at,
        project_id=outcome.project_id,
        reasoning_tokens=min(
            max(0, outcome.reasoning_tokens), max(0, outcome.completion_tokens)
        ),
    )
