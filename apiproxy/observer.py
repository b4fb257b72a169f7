"""Step 7a, observe: read usage and timing facts from a relayed SSE stream
without re-encoding it.

The observer sees every upstream read once. It forwards whole events (it holds
back at most one incomplete event), counts content-bearing chunks, and JSON-parses
only the rare event that carries a usage object. It removes the usage chunk the
proxy asked for on the client's behalf when the client did not ask for it, and
synthesises one from its own count when the client asked and the backend sent none.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

_DONE = b"data: [DONE]"
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_CONTENT = re.compile(rb'"(?:content|text|reasoning_content|arguments)"\s*:\s*"(?!")')
_FINISH = re.compile(rb'"finish_reason"\s*:\s*"([a-z_]+)"')
_ID = re.compile(rb'"id"\s*:\s*"([^"]{1,200})"')
# An error the backend reports inside the stream (then usually [DONE]).
_ERROR_EVENT = re.compile(rb'(?:^|\n)data: ?\{\s*"error"\s*:')


class StreamObserver:
    def __init__(
        self, *, strip_usage: bool, synthesise_usage: bool, model: str
    ) -> None:
        self.strip_usage = strip_usage
        self.synthesise_usage = synthesise_usage
        self.model = model
        self.pending = b""
        self.content_chunks = 0
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.finish_reason: str | None = None
        self.first_token_at: float | None = None
        self.done = False
        self.failed = False
        self.stream_id: str | None = None

    def feed(self, data: bytes) -> bytes:
        """Bytes to forward for this upstream read (possibly empty)."""
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        buffer = self.pending + data if self.pending else data
        end = buffer.rfind(b"\n\n")
        if end == -1:
            self.pending = buffer
            return b""
        complete, self.pending = buffer[: end + 2], buffer[end + 2 :]
        return self._inspect(complete)

    def _inspect(self, complete: bytes) -> bytes:
        content = len(_CONTENT.findall(complete))
        if content:
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            self.content_chunks += content
        if self.stream_id is None:
            match = _ID.search(complete)
            if match:
                self.stream_id = match.group(1).decode("utf-8", "replace")
        if b'"error"' in complete and _ERROR_EVENT.search(complete):
            self.failed = True
        finish = _FINISH.findall(complete)
        if finish:
            self.finish_reason = finish[-1].decode()
        if _USAGE_OBJECT.search(complete):
            complete = self._take_usage(complete)
        if _DONE in complete:
            self.done = True
            if self.synthesise_usage and self.completion_tokens is None:
                head, _, tail = complete.partition(_DONE)
                complete = head + self.usage_event() + _DONE + tail
        return complete

    def _take_usage(self, complete: bytes) -> bytes:
        kept: list[bytes] = []
        for event in complete.split(b"\n\n"):
            if not event:
                continue
            if _USAGE_OBJECT.search(event) and event.startswith(b"data: {"):
                usage_only = self._read_usage(event[6:])
                if usage_only and self.strip_usage:
                    continue
            kept.append(event + b"\n\n")
        return b"".join(kept)

    def _read_usage(self, payload: bytes) -> bool:
        """Record the usage; True when the event carries nothing else."""
        try:
            chunk = json.loads(payload)
        except ValueError:
            return False
        usage = chunk.get("usage") if isinstance(chunk, dict) else None
        if not isinstance(usage, dict):
            return False
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int):
            self.prompt_tokens = prompt
        if isinstance(completion, int):
            self.completion_tokens = completion
        return not chunk.get("choices")

    def usage_event(self) -> bytes:
        completion = self.completion_tokens_final()
        prompt = self.prompt_tokens or 0
        chunk: dict[str, Any] = {
            "id": self.stream_id or "",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    def completion_tokens_final(self) -> int:
        if self.completion_tokens is not None:
            return self.completion_tokens
        return self.content_chunks

    @property
    def usage_source(self) -> str:
        return "reported" if self.completion_tokens is not None else "counted"

    def flush(self) -> bytes:
        """Whatever incomplete event is left when the upstream ends."""
        rest, self.pending = self.pending, b""
        return rest
