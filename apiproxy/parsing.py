"""Step 2, parse: read the body within the size limit and validate what the
proxy relies on. Everything else in the body is passed on untouched, so new
OpenAI parameters work without a Portico release."""

from __future__ import annotations

import asyncio
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from apiproxy.errors import ProxyError, invalid_request
from apiproxy.mediaparts import MediaRef, media_collect

# Fields that would let a caller redirect traffic or smuggle credentials
# upstream (LiteLLM-style clients send some of them).
DROPPED_FIELDS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "extra_headers",
        "headers",
        "organization",
        "custom_llm_provider",
    }
)

ENDPOINT_CAPABILITY = {
    "chat/completions": "chat",
    "completions": "completions",
    "embeddings": "embeddings",
    "audio/transcriptions": "transcription",
    "responses": "chat",
}


@dataclass
class ParsedRequest:
    endpoint: str
    model: str
    stream: bool
    client_wants_usage: bool
    body: dict[str, Any]
    prompt_estimate: int
    # Remote media URLs to fetch and inline once the request is admitted.
    media: list[MediaRef] = field(default_factory=list)


def body_too_large(limit: int) -> ProxyError:
    return ProxyError(
        413,
        f"Request body exceeds the limit of {limit} bytes.",
        code="request_too_large",
    )


def json_parse(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object. Linear in its size; nesting beyond what
    Python's parser recurses through is a 400, never a crash."""
    if not raw:
        raise invalid_request("The request body is empty; send a JSON object.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid_request(
            "We could not parse the JSON body of your request. Send valid JSON."
        ) from None
    except RecursionError:
        raise invalid_request(
            "The JSON body of your request is nested too deeply."
        ) from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    return body


def _require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise invalid_request("You must provide a model parameter.", param="model")
    if not isinstance(model, str) or not model.strip():
        raise invalid_request("'model' must be a non-empty string.", param="model")
    return model


def _optional_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid_request(f"'{name}' must be a boolean.", param=name)
    return value


def _optional_number(
    body: dict[str, Any], name: str, *, low: float, high: float, integer: bool = False
) -> None:
    value = body.get(name)
    if value is None:
        return
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(
        value, int if integer else (int, float)
    ):
        raise invalid_request(f"'{name}' must be {kind}.", param=name)
    if not math.isfinite(value) or not low <= value <= high:
        raise invalid_request(
            f"'{name}' must be between {low:g} and {high:g}.", param=name
        )


def _text_length(content: Any, param: str) -> int:
    """Characters of text in a message's content (string or content parts)."""
    if content is None or isinstance(content, str):
        return len(content or "")
    if not isinstance(content, list):
        raise invalid_request(f"'{param}' must be a string or an array.", param=param)
    total = 0
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise invalid_request(
                f"'{where}' must be an object with a type.", param=where
            )
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise invalid_request(f"'{where}.text' must be a string.", param=where)
            total += len(part["text"])
        elif part["type"] == "image_url":
            total += IMAGE_TOKEN_ESTIMATE_CHARS
    return total


# An image costs a few hundred tokens on most vision models; count it so the
# context check is not fooled by an image-only message.
IMAGE_TOKEN_ESTIMATE_CHARS = 85 * 4


def _chat_validate(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request(
            "'messages' must be a non-empty array of message objects.", param="messages"
        )
    chars = 0
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid_request(f"'{where}' must be an object.", param=where)
        if not isinstance(message.get("role"), str):
            raise invalid_request(
                f"'{where}.role' must be a string.", param=f"{where}.role"
            )
        chars += _text_length(message.get("content"), f"{where}.content") + 16
    for name in ("tools", "stop"):
        value = body.get(name)
        if value is not None and not isinstance(
            value, list | str if name == "stop" else list
        ):
            raise invalid_request(f"'{name}' has the wrong type.", param=name)
    response_format = body.get("response_format")
    if response_format is not None and not isinstance(response_format, dict):
        raise invalid_request(
            "'response_format' must be an object.", param="response_format"
        )
    return chars


def _completions_validate(body: dict[str, Any]) -> int:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return len(prompt)
    if isinstance(prompt, list) and prompt:
        if all(isinstance(item, str) for item in prompt):
            return sum(len(item) for item in prompt)
        if all(isinstance(item, int) and not isinstance(item, bool) for item in prompt):
            return len(prompt) * 4
    raise invalid_request(
        "'prompt' must be a string, an array of strings or an array of tokens.",
        param="prompt",
    )


def _embeddings_validate(body: dict[str, Any]) -> int:
    value = body.get("input")
    ok = isinstance(value, str) or (
        isinstance(value, list)
        and value
        and (
            all(isinstance(item, str) for item in value)
            or all(
                isinstance(item, int) and not isinstance(item, bool) for item in value
            )
            or all(
                isinstance(item, list) and all(isinstance(t, int) for t in item)
                for item in value
            )
        )
    )
    if not ok:
        raise invalid_request(
            "'input' must be a string, an array of strings, or tokens.", param="input"
        )
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise invalid_request(
            "'encoding_format' must be 'float' or 'base64'.", param="encoding_format"
        )
    return len(json.dumps(value))


def _responses_validate(body: dict[str, Any]) -> int:
    if "input" not in body:
        raise invalid_request("You must provide an input parameter.", param="input")
    return len(json.dumps(body["input"]))


_VALIDATORS = {
    "chat/completions": _chat_validate,
    "completions": _completions_validate,
    "embeddings": _embeddings_validate,
    "responses": _responses_validate,
}


def request_parse(endpoint: str, raw: bytes) -> ParsedRequest:
    """Validate a JSON request for `endpoint` and return what later steps need."""
    body = json_parse(raw)
    for name in DROPPED_FIELDS & body.keys():
        del body[name]
    model = _require_model(body)
    chars = _VALIDATORS[endpoint](body)
    media = media_collect(endpoint, body)
    stream = _optional_bool(body, "stream") if endpoint != "embeddings" else False
    options = body.get("stream_options")
    client_wants_usage = False
    if options is not None:
        if not stream:
            raise invalid_request(
                "'stream_options' is only allowed when 'stream' is true.",
                param="stream_options",
            )
        if not isinstance(options, dict):
            raise invalid_request(
                "'stream_options' must be an object.", param="stream_options"
            )
        client_wants_usage = options.get("include_usage") is True
    _optional_number(body, "temperature", low=0, high=2)
    _optional_number(body, "top_p", low=0, high=1)
    _optional_number(body, "n", low=1, high=128, integer=True)
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        _optional_number(body, name, low=1, high=10_000_000, integer=True)
    return ParsedRequest(
        endpoint=endpoint,
        model=model,
        stream=stream,
        client_wants_usage=client_wants_usage,
        body=body,
        prompt_estimate=chars // 4 + 1,
        media=media,
    )


# Bodies above this are parsed in a worker thread: a 20 MB body takes about
# half a second to parse, which on the event loop would stall every stream of
# the process. Two threads: big bodies wait for each other, not the loop.
PARSE_IN_THREAD_BYTES = 256 * 1024
_parser_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="parse")


async def request_parse_off_loop(endpoint: str, raw: bytes) -> ParsedRequest:
    """`request_parse`, in a worker thread when the body is large."""
    if len(raw) <= PARSE_IN_THREAD_BYTES:
        return request_parse(endpoint, raw)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_parser_threads, request_parse, endpoint, raw)
