"""Admission's context check: refuse a prompt before the backend only when it
cannot fit the model's window, never on a guess.

Three figures, cheapest first:

1. An upper estimate from the UTF-8 bytes of the prompt's text. Byte-level BPE
   (GPT-2, Llama 3, Qwen, SmolLM) never makes more tokens than bytes, nor does
   SentencePiece with byte fallback (plus its one leading piece); the chat
   template, tool definitions and images get allowances on top. Under the
   window, the prompt fits: nothing else is done (the ordinary request).
2. A proven lower bound: the bytes of text every chat template keeps (what the
   user, system and tools said; an assistant's turns may be rewritten, e.g.
   thoughts dropped) divided by MAX_BYTES_PER_TOKEN. Over the window: refused.
3. The backend's own count (apiproxy.tokenize), exact, where it has a
   tokenizer. Over the window (or the backend's own, where it reports a
   smaller one): refused.

Otherwise the request goes on, and a backend's refusal is translated into the
same error (apiproxy.errors.upstream_error_translate). The answer's length
(max_tokens and kin) is never touched: how much of the window is left is for
the backend to decide with the real count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from apiproxy.catalog import CatalogModel
from apiproxy.errors import context_exceeded
from apiproxy.parsing import ParsedRequest
from apiproxy.tokenize import PromptCount, prompt_count, tokenizers

# The most bytes one token can stand for, to be safe. The longest tokens of
# common vocabularies are runs of spaces, dashes or '#': SmolLM2's (the demo
# model) is 81 bytes, read from its GGUF vocabulary; 5,000 spaces make 79
# tokens there. We know of none over 128 bytes and take twice that, so the
# bound holds for vocabularies we have not measured. A bound this loose only
# refuses prompts far over the window; the tokenizer does the precise work.
MAX_BYTES_PER_TOKEN = 256
# Allowances in the upper estimate (tokens): the template's fixed text, each
# message's role markers, tool definitions (written out by the template), and
# an image, audio clip or file (vision encoders vary; the tokenizer is not
# asked about media, see `_media`).
TEMPLATE_ALLOWANCE = 64
MESSAGE_ALLOWANCE = 16
TOOLS_ALLOWANCE = 256
MEDIA_ALLOWANCE = 1024

_KEPT_ROLES = frozenset({"user", "system", "developer", "tool", "function"})
_MEDIA_TYPES = frozenset(
    {"image_url", "input_audio", "audio_url", "video_url", "file"}
    | {"input_image", "input_file", "input_audio"}
)
_ENDPOINTS = frozenset({"chat/completions", "completions", "responses"})


@dataclass(frozen=True, slots=True)
class PromptSize:
    upper: int  # tokens the prompt cannot exceed (allowances included)
    lower: int  # tokens it cannot be under
    exact: bool = False  # a token-id prompt: lower is the count
    media: bool = False  # holds images, audio or files


async def context_fit(parsed: ParsedRequest, model: CatalogModel) -> None:
    """Refuse a prompt that cannot fit the model's context window; let every
    other one through unchanged (the backend has the last word)."""
    if parsed.endpoint not in _ENDPOINTS:
        return
    window = model.context_window
    size = prompt_size(parsed.endpoint, parsed.body)
    if size.upper <= window:
        return
    if size.lower > window:
        raise context_exceeded(
            endpoint=parsed.endpoint,
            window=window,
            tokens=size.lower,
            at_least=not size.exact,
        )
    if size.exact or size.media:
        return
    counted = await _backend_count(parsed, model)
    if counted is None:
        return
    # The catalog's window (staff may set it below the backend's) or the
    # backend's own, where it reports a smaller one: past either, it fails.
    window = min(window, counted.window or window)
    if counted.tokens > window:
        raise context_exceeded(
            endpoint=parsed.endpoint, window=window, tokens=counted.tokens
        )


async def _backend_count(
    parsed: ParsedRequest, model: CatalogModel
) -> PromptCount | None:
    """Ask the first healthy route's backend that may have a tokenizer;
    None where none can say."""
    body = parsed.body
    if parsed.endpoint == "chat/completions":
        what: dict[str, Any] = {"messages": body["messages"]}
    elif parsed.endpoint == "completions" and _single_text(body.get("prompt")):
        prompt = body["prompt"]
        what = {"prompt": prompt if isinstance(prompt, str) else prompt[0]}
    elif parsed.endpoint == "responses" and isinstance(body.get("input"), str):
        what = {"messages": _responses_messages(body)}
    else:
        return None
    for route in model.routes:
        if route.healthy and tokenizers.dialects(route):
            return await prompt_count(route, **what)
    return None


def _single_text(prompt: object) -> bool:
    return isinstance(prompt, str) or (
        isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str)
    )


def _responses_messages(body: dict[str, Any]) -> list[dict[str, str]]:
    """A Responses request with text input, as the chat messages vLLM turns
    it into (instructions first, as a system message)."""
    messages = [{"role": "user", "content": body["input"]}]
    if isinstance(body.get("instructions"), str):
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    return messages


def prompt_size(endpoint: str, body: dict[str, Any]) -> PromptSize:
    """The bounds of a validated request's prompt (apiproxy.parsing has
    checked its shape). Linear in the text; UTF-8 is only encoded where a
    string is not ASCII."""
    if endpoint == "completions":
        return _completion_size(body.get("prompt"))
    messages = _prompt_messages(endpoint, body)
    tools = 0
    if body.get("tools"):
        tools = TOOLS_ALLOWANCE + _utf8_all(body["tools"])
    total = kept = media = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        text, found = _message_text(message)
        total += text + _utf8_all(message.get("tool_calls"))
        media += found
        if message.get("role") in _KEPT_ROLES or message.get("type") == (
            "function_call_output"
        ):
            kept += text
    upper = total + TEMPLATE_ALLOWANCE + MESSAGE_ALLOWANCE * len(messages)
    return PromptSize(
        upper=upper + tools + MEDIA_ALLOWANCE * media,
        lower=kept // MAX_BYTES_PER_TOKEN,
        media=media > 0,
    )


def _prompt_messages(endpoint: str, body: dict[str, Any]) -> list[Any]:
    """Chat messages, or a Responses request's instructions and input items."""
    if endpoint != "responses":
        return body.get("messages") or []
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    messages = list(items) if isinstance(items, list) else []
    if isinstance(body.get("instructions"), str):
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    return messages


def _message_text(message: dict[str, Any]) -> tuple[int, int]:
    """Bytes of a message's text (its content, a tool's output) and how many
    media parts it holds."""
    content = message.get("content", message.get("output"))
    if isinstance(content, str):
        return _utf8(content), 0
    text = media = 0
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        if part.get("type") in _MEDIA_TYPES:
            media += 1
        elif isinstance(part.get("text"), str):
            text += _utf8(part["text"])
    return text, media


def _completion_size(prompt: Any) -> PromptSize:
    """A completions prompt: text, texts (a batch: each must fit on its own),
    token ids or batches of them (counted exactly)."""
    if isinstance(prompt, str):
        prompt = [prompt]
    if not isinstance(prompt, list) or not prompt:
        return PromptSize(upper=0, lower=0)
    if all(isinstance(item, int) for item in prompt):
        return PromptSize(upper=len(prompt), lower=len(prompt), exact=True)
    if all(isinstance(item, list) for item in prompt):
        longest = max(len(item) for item in prompt)
        return PromptSize(upper=longest, lower=longest, exact=True)
    longest = max(_utf8(item) for item in prompt if isinstance(item, str))
    return PromptSize(
        upper=longest + TEMPLATE_ALLOWANCE, lower=longest // MAX_BYTES_PER_TOKEN
    )


def _utf8(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def _utf8_all(value: Any) -> int:
    """Bytes of every string in a JSON value (tool calls: names, arguments)."""
    if value is None:
        return 0
    return _utf8(json.dumps(value, ensure_ascii=False))
