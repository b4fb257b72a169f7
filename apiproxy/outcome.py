"""Hands a finished request's outcome to the metrics, the log and the meter."""

from __future__ import annotations

import logging
import time

from apiproxy.metrics import outcome_observe
from apiproxy.requestlog import request_log
from usage.buffer import usage_buffer
from usage.outcome import RequestOutcome

logger = logging.getLogger(__name__)


def outcome_submit(outcome: RequestOutcome, *, meter: bool = True) -> None:
    """Count the request in the metrics, write its log line and (with `meter`)
    hand it to the meter. Never blocks and never raises: none of this may slow
    or break a response (the buffer writes in batches)."""
    if outcome.ended_at is None:
        outcome.ended_at = time.monotonic()
    try:
        outcome_observe(outcome)
        request_log(outcome)
    except Exception:
        logger.exception("metrics or log line of %s failed", outcome.request_id)
    if meter:
        usage_buffer.add(outcome)
