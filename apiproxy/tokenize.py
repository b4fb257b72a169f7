"""Exact prompt token counts from the backend's own tokenizer, for the context
check (apiproxy.contextfit) and nothing else.

The check asks only about prompts whose cheap upper estimate does not fit the
window, so an ordinary request never pays this round trip. Two dialects:

- vLLM: `POST {root}/tokenize` with {"model", "messages"} (the chat template
  applied, generation prompt added) or {"model", "prompt"}; it answers
  {"count", "max_model_len", "tokens"}. SGLang is asked the same way.
- llama.cpp: `POST {root}/apply-template` {"messages"} gives the templated
  prompt, `POST {root}/tokenize` {"content"} its tokens (measured against the
  demo backend: the count equals the prompt_tokens it then reports). Its
  /tokenize ignores "messages" and answers no tokens, which is how a backend of
  unknown software is told apart from vLLM.

Ollama has no tokenizer endpoint and is never asked. `{root}` is the server's
root: a route's base URL ends in /v1, these endpoints are not under it.

What each (backend, model) has is remembered: one without a tokenizer is not
asked again for NO_TOKENIZER_SECONDS, one whose tokenizer failed (slow, an
error) for FAILED_SECONDS. Any failure means "no count", never a refusal: the
request goes on, and a backend refuses an over-long prompt itself.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from apiproxy.catalog import Route
from apiproxy.relay import session_get

logger = logging.getLogger(__name__)

TOKENIZE_TIMEOUT_SECONDS = 2.0
NO_TOKENIZER_SECONDS = 600.0
FAILED_SECONDS = 60.0
# A token list of a whole window, as JSON: a few bytes a token.
ANSWER_LIMIT = 32 << 20

VLLM = "vllm"
LLAMACPP = "llamacpp"
# Which dialects to try, by the software the catalog says a backend runs.
_DIALECTS_OF_SOFTWARE: dict[str, tuple[str, ...]] = {
    "vllm": (VLLM,),
    "sglang": (VLLM,),
    "llamacpp": (LLAMACPP,),
    "ollama": (),
    "": (VLLM, LLAMACPP),
}


@dataclass(frozen=True, slots=True)
class PromptCount:
    tokens: int
    window: int | None = None  # the backend's own max_model_len, where it says


class _Missing(Exception):
    """The backend has no such endpoint: do not ask it again for a while."""


class _Failed(Exception):
    """The tokenizer is there but did not answer usefully this time."""


class TokenizerMemory:
    """Which dialect each (backend, upstream model) speaks, or that it has
    none, until when. Per process, in memory: a restart simply asks again."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, str], tuple[str | None, float]] = {}

    def dialects(self, route: Route) -> tuple[str, ...]:
        """The dialects worth trying on this route now (none: do not ask)."""
        candidates = _DIALECTS_OF_SOFTWARE.get(route.software, (VLLM, LLAMACPP))
        known = self._known.get((route.backend_id, route.upstream_model))
        if not candidates or known is None or known[1] <= time.monotonic():
            return candidates
        return () if known[0] is None else (known[0],)

    def remember(self, route: Route, dialect: str | None, *, seconds: float) -> None:
        until = time.monotonic() + seconds
        self._known[(route.backend_id, route.upstream_model)] = (dialect, until)

    def clear(self) -> None:
        self._known.clear()


tokenizers = TokenizerMemory()


def tokenizer_root(base_url: str) -> str:
    """The server root of a route's OpenAI base URL (which ends in /v1, maybe
    under a path prefix that the server's own endpoints share)."""
    return base_url.removesuffix("/").removesuffix("/v1")


async def prompt_count(
    route: Route,
    *,
    messages: list[Any] | None = None,
    prompt: str | None = None,
) -> PromptCount | None:
    """The exact token count of `messages` (chat, template applied) or
    `prompt` (completions) on this route's backend, or None when it cannot
    say (no tokenizer, a failure, a slow answer)."""
    for dialect in tokenizers.dialects(route):
        try:
            if dialect == VLLM:
                counted = await _vllm_count(route, messages=messages, prompt=prompt)
            else:
                counted = await _llamacpp_count(route, messages, prompt)
        except _Missing:
            continue
        except _Failed:
            tokenizers.remember(route, None, seconds=FAILED_SECONDS)
            return None
        tokenizers.remember(route, dialect, seconds=math.inf)
        return counted
    if tokenizers.dialects(route):
        tokenizers.remember(route, None, seconds=NO_TOKENIZER_SECONDS)
    return None


async def _vllm_count(
    route: Route, *, messages: list[Any] | None, prompt: str | None
) -> PromptCount:
    payload: dict[str, Any] = {"model": route.upstream_model}
    if messages is not None:
        payload |= {"messages": messages, "add_generation_prompt": True}
    else:
        payload["prompt"] = prompt
    answer = await _post(route, "/tokenize", payload)
    count, tokens = answer.get("count"), answer.get("tokens")
    if not isinstance(count, int) and isinstance(tokens, list):
        count = len(tokens)
    if not isinstance(count, int) or isinstance(count, bool):
        raise _Failed
    if count == 0:
        # llama.cpp's /tokenize ignores "messages" and "prompt": not this
        # dialect (no prompt Portico counts is empty).
        raise _Missing
    window = answer.get("max_model_len")
    return PromptCount(count, window if isinstance(window, int) else None)


async def _llamacpp_count(
    route: Route, messages: list[Any] | None, prompt: str | None
) -> PromptCount:
    if messages is not None:
        templated = await _post(route, "/apply-template", {"messages": messages})
        prompt = templated.get("prompt")
        if not isinstance(prompt, str):
            raise _Failed
    # No BOS added: where the template writes one, it is counted once.
    answer = await _post(route, "/tokenize", {"content": prompt, "add_special": False})
    tokens = answer.get("tokens")
    if not isinstance(tokens, list):
        raise _Failed
    return PromptCount(len(tokens))


async def _post(route: Route, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    if route.api_key:
        headers["authorization"] = f"Bearer {route.api_key}"
    timeout = aiohttp.ClientTimeout(total=TOKENIZE_TIMEOUT_SECONDS)
    try:
        async with session_get().post(
            tokenizer_root(route.base_url) + path,
            data=json.dumps(payload, separators=(",", ":")),
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
        ) as response:
            if response.status in (404, 405, 501):
                raise _Missing
            if response.status != 200:
                raise _Failed
            body = await _bounded_read(response)
    except (aiohttp.ClientError, TimeoutError):
        logger.info("tokenizer of backend %s did not answer", route.backend_name)
        raise _Failed from None
    try:
        answer = json.loads(body)
    except ValueError:
        raise _Failed from None
    if not isinstance(answer, dict):
        raise _Failed
    return answer


async def _bounded_read(response: aiohttp.ClientResponse) -> bytes:
    if (response.content_length or 0) > ANSWER_LIMIT:
        raise _Failed
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > ANSWER_LIMIT:
            raise _Failed
        chunks.append(chunk)
    return b"".join(chunks)
