"""OpenAI wire-format bodies for the fake backend (tests/fakebackend.py).

Pure functions, no I/O: what a vLLM or llama.cpp server would put on the wire
for the same request, so the proxy's tests see realistic shapes. Error bodies
copy the quirks the proxy must smooth over (vLLM's integer `code`, a 500 whose
text leaks an internal URL and secret).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from typing import Any

# A 500 from the fake carries these; tests assert the proxy never reflects them.
INTERNAL_URL = "http://10.77.0.9:8000/internal/debug"
INTERNAL_SECRET = "sk-internal-do-not-leak-4f2a9c"


def fake_token(index: int) -> str:
    return f"tok{index} "


def fake_text(tokens: int) -> str:
    """The full text the fake generates for `tokens` tokens: 'tok0 tok1 ...'."""
    return "".join(fake_token(i) for i in range(tokens))


def text_pieces(text: str) -> list[str]:
    """`text` as streamed tokens: each word with the whitespace after it."""
    return re.findall(r"\s*\S+\s*", text) if text.strip() else [text]


def prompt_tokens_count(payload: dict[str, Any]) -> int:
    """A deterministic stand-in for tokenising: whitespace words in the prompt."""
    return max(1, sum(len(text.split()) for text in prompt_texts(payload)))


def prompt_texts(payload: dict[str, Any]) -> list[str]:
    """The texts of a request's prompt (messages, prompt or input), in order."""
    texts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            if value.get("type") in (None, "text", "input_text"):
                walk(value.get("content", value.get("text")))

    for key in ("messages", "prompt", "input"):
        walk(payload.get(key))
    return texts


def usage_body(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def chat_chunk(
    *,
    request_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    with_usage_field: bool = False,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
    }
    if with_usage_field:
        # OpenAI sends "usage": null on every chunk once include_usage is set.
        chunk["usage"] = None
    return chunk


def completion_chunk(
    *,
    request_id: str,
    model: str,
    created: int,
    text: str,
    finish_reason: str | None = None,
    with_usage_field: bool = False,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        ],
    }
    if with_usage_field:
        chunk["usage"] = None
    return chunk


def usage_chunk(
    *, request_id: str, model: str, created: int, object_: str, usage: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": object_,
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    }


def chat_completion_body(
    *,
    request_id: str,
    model: str,
    created: int,
    text: str,
    finish_reason: str,
    usage: dict[str, int] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def completion_body(
    *,
    request_id: str,
    model: str,
    created: int,
    text: str,
    finish_reason: str,
    usage: dict[str, int] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on the text: same input, same embedding."""
    digest = b""
    counter = 0
    while len(digest) < dimensions * 4:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    raw = [
        (int.from_bytes(digest[i * 4 : i * 4 + 4], "little") / 2**32) * 2 - 1
        for i in range(dimensions)
    ]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    # Rounded through float32 so the float and base64 encodings agree exactly.
    return [struct.unpack("<f", struct.pack("<f", x / norm))[0] for x in raw]


def embeddings_body(
    *, model: str, inputs: list[Any], dimensions: int, encoding_format: str
) -> dict[str, Any]:
    data = []
    for index, item in enumerate(inputs):
        vector = embedding_vector(json.dumps(item), dimensions)
        embedding: list[float] | str = vector
        if encoding_format == "base64":
            embedding = base64.b64encode(
                struct.pack(f"<{dimensions}f", *vector)
            ).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(
        len(item.split()) if isinstance(item, str) else len(item) for item in inputs
    )
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def response_object(
    *, response_id: str, model: str, created: int, text: str | None, usage: Any
) -> dict[str, Any]:
    """A Responses API object; `text=None` is the in-progress shell."""
    output = []
    if text is not None:
        output.append(
            {
                "type": "message",
                "id": f"msg_{response_id}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress" if text is None else "completed",
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def error_body(status: int) -> dict[str, Any]:
    """What real backends answer with this status, quirks included."""
    if status == 400:
        # vLLM: top-level fields and an integer code.
        return {
            "object": "error",
            "message": "This model's maximum context length is 2048 tokens.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    if status == 401:
        return {
            "error": {
                "message": "Invalid API key",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
    if status == 403:
        # A gateway refusing a key it knows: it names the key and the caller.
        return {
            "error": {
                "message": f"Key {INTERNAL_SECRET} may not call this model from "
                f"{INTERNAL_URL}",
                "type": "permission_error",
                "param": None,
                "code": "forbidden",
            }
        }
    if status == 429:
        return {
            "error": {
                "message": "Rate limit reached for requests",
                "type": "rate_limit_error",
                "param": None,
                "code": 429,
            }
        }
    if status == 500:
        return {
            "error": {
                "message": (
                    f"Traceback: upstream {INTERNAL_URL} failed with "
                    f"Authorization: Bearer {INTERNAL_SECRET}"
                ),
                "type": "InternalServerError",
                "param": None,
                "code": 500,
            }
        }
    if status == 503:
        return {
            "error": {
                "message": "The server is overloaded, retry later",
                "type": "ServiceUnavailableError",
                "param": None,
                "code": 503,
            }
        }
    return {
        "error": {
            "message": f"Fake backend error {status}",
            "type": "server_error" if status >= 500 else "invalid_request_error",
            "param": None,
            "code": status,
        }
    }


def sse(data: dict[str, Any] | str, *, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {text}\n\n".encode()
