"""Usage of a JSON (non-streamed) answer: the counts a backend reports,
clamped before they are billed, or an estimate from the answer's text where it
reports none. Thoughts (reasoning tokens) are a part of the completion tokens,
as OpenAI counts them, never added on top."""

from __future__ import annotations

import json
from typing import Any

from apiproxy.observer import TOKENS_PER_REQUEST_MAX, usage_counts
from usage.outcome import RequestOutcome

# Answers bounded by the model's context window (an embeddings batch or an
# audio file is not: their counts are bounded by TOKENS_PER_REQUEST_MAX only).
_WINDOWED_OBJECTS = frozenset({"chat.completion", "text_completion", "response"})


def usage_read(
    body: bytes, outcome: RequestOutcome, *, window: int = TOKENS_PER_REQUEST_MAX
) -> None:
    """Usage and finish reason of a JSON answer; reported counts are clamped
    (to 0 when negative, to the context window where one applies)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return
    if not isinstance(parsed, dict):
        return
    usage = parsed.get("usage")
    if isinstance(usage, dict):
        ceiling = TOKENS_PER_REQUEST_MAX
        if parsed.get("object") in _WINDOWED_OBJECTS:
            ceiling = min(ceiling, window)
        prompt, completion, reasoning = usage_counts(usage, ceiling=ceiling)
        if prompt is not None:
            outcome.prompt_tokens = prompt
        outcome.completion_tokens = completion or 0
        if reasoning is None:
            # Not reported (llama.cpp): the thoughts' share, estimated.
            reasoning = _estimate(_answer_chars(parsed, keys=_THOUGHT_KEYS))
        outcome.reasoning_tokens = min(reasoning, outcome.completion_tokens)
        outcome.usage_source = "reported"
    else:
        # No usage from the backend: bill an estimate of the answer (four
        # characters a token, like the prompt estimate), never zero.
        outcome.completion_tokens = _estimate(_answer_chars(parsed))
        outcome.reasoning_tokens = _estimate(_answer_chars(parsed, keys=_THOUGHT_KEYS))
    choices = parsed.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        if isinstance(reason, str):
            outcome.finish_reason = reason
    if not outcome.finish_reason:
        outcome.finish_reason = "stop"


# Where an answer's generated text is: its content, tool call arguments, a
# refusal, and its thoughts (`reasoning_content`, newer vLLM's `reasoning`).
_THOUGHT_KEYS = frozenset({"reasoning_content", "reasoning"})
_ANSWER_KEYS = frozenset({"content", "text", "arguments", "refusal"}) | _THOUGHT_KEYS


def _estimate(chars: int) -> int:
    """Tokens of generated text, four characters a token (never zero for
    some text)."""
    return chars // 4 + 1 if chars else 0


def _answer_chars(
    value: Any, depth: int = 0, *, keys: frozenset[str] = _ANSWER_KEYS
) -> int:
    """Characters of generated text (under `keys`) in an answer."""
    if depth > 8:
        return 0
    if isinstance(value, dict):
        return sum(
            len(item)
            if key in keys and isinstance(item, str)
            else _answer_chars(item, depth + 1, keys=keys)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return sum(_answer_chars(item, depth + 1, keys=keys) for item in value)
    return 0
