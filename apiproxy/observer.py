"""Step 7a, observe: read usage and timing facts from a relayed SSE stream
without re-encoding it.

The observer sees every upstream read once. It forwards whole events (it holds
back at most one incomplete event), counts token-bearing chunks (content, tool
call arguments, thoughts: `reasoning_content` or `reasoning`, the Responses
API's `delta`s), thoughts also apart, and JSON-parses only the rare event that
carries a usage object or ends a Responses stream. It removes the usage chunk the
proxy asked for on the client's behalf when the client did not ask for it, and
synthesises one from its own count when the client asked and the backend sent none.

A chat or completions stream ends with `data: [DONE]`; a Responses stream
with its `response.completed` (or `.failed`, `.incomplete`) event, which also
carries its usage (input_tokens, output_tokens and, inside those, the
reasoning tokens).

SSE is read by its framing only: a field is a line, an event ends at a blank
line. A JSON string cannot hold a raw newline, so model text that says
`data: [DONE]` (or looks like a usage object) is never taken for the real thing.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

# No backend answers a single request with more tokens than this; a figure
# above it is a lie or a bug, and billing it would drain quotas.
TOKENS_PER_REQUEST_MAX = 10_000_000

# Cheap screen first (a substring search), the framing check only on a hit.
_DONE_MARK = b"[DONE]"
_DONE_LINE = re.compile(rb"(?:^|\n)data: ?\[DONE\][ \t]*(?=\n)")
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
# A string value starting a token: Responses deltas are strings, chat ones are
# objects (`"delta":{`), so "delta" only matches the former.
_CONTENT = re.compile(rb'"(?:content|text|arguments|delta)"\s*:\s*"(?!")')
# Thoughts: llama.cpp and vLLM say reasoning_content, newer vLLM reasoning
# (some versions both in one chunk, counted once); the Responses API has
# events of their own (their `delta` is counted above).
_REASONING_MARK = re.compile(rb'"reasoning|"response\.reasoning')
_REASONING = re.compile(rb'"reasoning(?:_content)?"\s*:\s*"(?!")')
_RESPONSES_REASONING = re.compile(
    rb'"type"\s*:\s*"response\.reasoning(?:_summary)?_text\.delta"'
)
_RESPONSES_END = re.compile(rb"response\.(?:completed|failed|incomplete)")
_FINISH = re.compile(rb'"finish_reason"\s*:\s*"([a-z_]+)"')
_ID = re.compile(rb'"id"\s*:\s*"([^"]{1,200})"')
# An error the backend reports inside the stream (then usually [DONE]).
_ERROR_EVENT = re.compile(rb'(?:^|\n)data: ?\{\s*"error"\s*:')
# One screen (with _DONE_MARK) for everything but the token count and the
# stream id: a run of events without any of these (nearly every read of a
# stream: one token) needs nothing else read. Each alternative is as loose as
# what it stands for (reasoning, a Responses end, usage, an error, a finish
# reason with a value), so a miss proves that the full path would find nothing
# to act on; a hit, even in model text, takes the full path. All start with a
# quote, which lets the engine skip to quotes (five times faster than plain
# alternatives).
_RARE = re.compile(rb'"(?:reasoning|response\.|usage"|error"|finish_reason"\s*:\s*")')


def token_count_clamp(value: object, *, ceiling: int) -> int | None:
    """A token count a backend reported, made safe to bill: None when it is
    not a count at all, 0 for a negative one (which would refund rate-limit
    tokens), at most `ceiling`."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return min(max(value, 0), ceiling)


class StreamObserver:
    def __init__(
        self,
        *,
        strip_usage: bool,
        synthesise_usage: bool,
        model: str,
        token_ceiling: int = TOKENS_PER_REQUEST_MAX,
    ) -> None:
        self.strip_usage = strip_usage
        self.synthesise_usage = synthesise_usage
        self.model = model
        self.token_ceiling = token_ceiling
        self.pending = b""
        self.content_chunks = 0
        self.reasoning_chunks = 0
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        self.finish_reason: str | None = None
        self.first_token_at: float | None = None
        self.done = False
        self.failed = False
        self.stream_id: str | None = None

    def feed(self, data: bytes) -> bytes:
        """Bytes to forward for this upstream read (possibly empty)."""
        buffer = self.pending + data if self.pending else data
        # A CRLF may be split across two reads: its CR then ends the pending part.
        if b"\r" in data or self.pending.endswith(b"\r"):
            buffer = buffer.replace(b"\r\n", b"\n")
        end = buffer.rfind(b"\n\n")
        if end == -1:
            self.pending = buffer
            return b""
        if end + 2 == len(buffer):  # the usual read: whole events, no copy
            complete, self.pending = buffer, b""
        else:
            complete, self.pending = buffer[: end + 2], buffer[end + 2 :]
        if _DONE_MARK not in complete and _RARE.search(complete) is None:
            # Token events only: count them, note the id, forward unchanged.
            content = len(_CONTENT.findall(complete))
            if content:
                if self.first_token_at is None:
                    self.first_token_at = time.monotonic()
                self.content_chunks += content
            if self.stream_id is None:
                self._id_take(complete)
            return complete
        return self._inspect(complete)

    def _id_take(self, complete: bytes) -> None:
        match = _ID.search(complete)
        if match:
            self.stream_id = match.group(1).decode("utf-8", "replace")

    def _inspect(self, complete: bytes) -> bytes:
        """Read one run of whole events (it starts at an event boundary and
        ends with a blank line)."""
        content = len(_CONTENT.findall(complete))
        if _REASONING_MARK.search(complete):
            content += self._count_reasoning(complete)
        if content:
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            self.content_chunks += content
        if self.stream_id is None:
            self._id_take(complete)
        if b'"error"' in complete and _ERROR_EVENT.search(complete):
            self.failed = True
        finish = _FINISH.findall(complete)
        if finish:
            self.finish_reason = finish[-1].decode()
        if _USAGE_OBJECT.search(complete):
            complete = self._take_usage(complete)
        if _DONE_MARK in complete:
            complete = self._take_done(complete)
        if _RESPONSES_END.search(complete):
            self._take_response_end(complete)
        return complete

    def _count_reasoning(self, complete: bytes) -> int:
        """Count thoughts apart; returns the chat-style ones, which the content
        count missed (a Responses thought is a `delta`, counted already)."""
        chat = sum(1 for event in complete.split(b"\n\n") if _REASONING.search(event))
        self.reasoning_chunks += chat + len(_RESPONSES_REASONING.findall(complete))
        return chat

    def _take_response_end(self, complete: bytes) -> None:
        """A Responses stream's last event: the end, its status and usage."""
        for event in complete.split(b"\n\n"):
            if not _RESPONSES_END.search(event):
                continue
            try:
                data = json.loads(_event_data(event))
            except ValueError:
                continue
            kind = data.get("type") if isinstance(data, dict) else None
            if kind not in _RESPONSE_ENDS:
                continue  # the words, in some text: not the end
            self.done = True
            response = data.get("response")
            response = response if isinstance(response, dict) else {}
            if kind == "response.failed":
                self.failed = True
            self.finish_reason = _response_finish(kind, response)
            if isinstance(response.get("usage"), dict):
                self._usage_take(response["usage"])

    def _take_done(self, complete: bytes) -> bytes:
        done = _DONE_LINE.search(complete)
        if done is None:
            return complete  # the characters, inside some text: not the end
        self.done = True
        if self.synthesise_usage and self.completion_tokens is None:
            # Before the event that holds the [DONE] line, never inside one.
            line_start = done.start() + (complete[done.start()] == 0x0A)
            at = complete.rfind(b"\n\n", 0, line_start)
            at = 0 if at == -1 else at + 2
            complete = complete[:at] + self.usage_event() + complete[at:]
        return complete

    def _take_usage(self, complete: bytes) -> bytes:
        kept: list[bytes] = []
        for event in complete.split(b"\n\n"):
            if not event:
                continue
            if _USAGE_OBJECT.search(event):
                usage_only = self._read_usage(_event_data(event))
                if usage_only and self.strip_usage:
                    continue
            kept.append(event + b"\n\n")
        return b"".join(kept)

    def _read_usage(self, payload: bytes) -> bool:
        """Record the usage; True when the event carries nothing else."""
        if not payload.startswith(b"{"):
            return False
        try:
            chunk = json.loads(payload)
        except ValueError:
            return False
        usage = chunk.get("usage") if isinstance(chunk, dict) else None
        if not isinstance(usage, dict):
            return False
        self._usage_take(usage)
        return not chunk.get("choices")

    def _usage_take(self, usage: dict[str, Any]) -> None:
        """Counts of a usage object, chat-style (prompt_tokens, ...) or
        Responses-style (input_tokens, ...), clamped."""
        ceiling = self.token_ceiling
        prompt, completion, reasoning = usage_counts(usage, ceiling=ceiling)
        if prompt is not None:
            self.prompt_tokens = prompt
        if completion is not None:
            self.completion_tokens = completion
        if reasoning is not None:
            self.reasoning_tokens = reasoning

    def usage_event(self) -> bytes:
        completion = self.completion_tokens_final()
        prompt = self.prompt_tokens or 0
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if self.reasoning_tokens_final():
            details = {"reasoning_tokens": self.reasoning_tokens_final()}
            usage["completion_tokens_details"] = details
        chunk: dict[str, Any] = {
            "id": self.stream_id or "",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [],
            "usage": usage,
        }
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    def completion_tokens_final(self) -> int:
        if self.completion_tokens is not None:
            return self.completion_tokens
        return self.content_chunks

    def reasoning_tokens_final(self) -> int:
        """Reasoning tokens, a part of the completion tokens (OpenAI's
        reckoning): as reported, else the thoughts counted."""
        if self.reasoning_tokens is not None:
            reasoning = self.reasoning_tokens
        else:
            reasoning = self.reasoning_chunks
        return min(reasoning, self.completion_tokens_final())

    @property
    def usage_source(self) -> str:
        return "reported" if self.completion_tokens is not None else "counted"


def _event_data(event: bytes) -> bytes:
    """The data of one SSE event: its `data:` lines, joined (the spec's rule),
    so an event with `event:` or `id:` lines is read like a bare one."""
    if event.startswith(b"data:") and b"\n" not in event:
        return event[5:].removeprefix(b" ")
    lines = event.split(b"\n")
    return b"\n".join(
        line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")
    )


_RESPONSE_ENDS = frozenset(
    {"response.completed", "response.failed", "response.incomplete"}
)


def _response_finish(kind: str, response: dict[str, Any]) -> str:
    """A Responses stream's end as a chat finish reason."""
    if kind == "response.failed":
        return "backend_error"
    if kind == "response.incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return "length" if reason in (None, "max_output_tokens") else str(reason)[:40]
    output = response.get("output")
    for item in output if isinstance(output, list) else ():
        if isinstance(item, dict) and item.get("type") == "function_call":
            return "tool_calls"
    return "stop"


def usage_counts(
    usage: dict[str, Any], *, ceiling: int
) -> tuple[int | None, int | None, int | None]:
    """(prompt, completion, reasoning) tokens of a usage object, chat-style or
    Responses-style, each clamped (None: not a count)."""
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    details = usage.get("completion_tokens_details", usage.get("output_tokens_details"))
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return (
        token_count_clamp(prompt, ceiling=ceiling),
        token_count_clamp(completion, ceiling=ceiling),
        token_count_clamp(reasoning, ceiling=ceiling),
    )
