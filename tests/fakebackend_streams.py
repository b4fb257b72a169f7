"""What the fake backend generates (tests/fakebackend.py): the answer a request
gets (content, thoughts, tool calls) as a JSON body or SSE events, a Responses
API event sequence like vLLM's, a tokenizer in vLLM's or llama.cpp's dialect,
and context refusals in each server's own words.

Pure functions over a Behaviour and the request's payload, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests import fakebackend_payloads as wire

if TYPE_CHECKING:
    from tests.fakebackend import Behaviour

Events = list[tuple[bytes, bool]]  # (SSE bytes, is a generated token)


@dataclass
class Answer:
    """What the fake generates for one chat or completions request."""

    pieces: list[str]  # content tokens, within max_tokens
    finish: str
    thoughts: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    thought_field: str = "reasoning_content"
    report_thoughts: bool = True

    @classmethod
    def plan(cls, b: Behaviour, payload: dict[str, Any]) -> Answer:
        if b.pieces is not None:
            pieces = list(b.pieces)
        elif b.text is not None:
            pieces = wire.text_pieces(b.text)
        else:
            pieces = [wire.fake_token(i) for i in range(b.tokens)]
        if b.tool_calls:
            pieces = []
        limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
        count = min(len(pieces), limit) if isinstance(limit, int) else len(pieces)
        finish = "length" if count < len(pieces) else "stop"
        return cls(
            pieces=pieces[:count],
            finish="tool_calls" if b.tool_calls else finish,
            thoughts=list(b.reasoning or []),
            calls=[dict(call) for call in b.tool_calls or []],
            thought_field=b.reasoning_field,
            report_thoughts=b.reasoning_usage,
        )

    def argument_pieces(self, call: dict[str, Any]) -> list[str]:
        """A call's arguments as streamed: a few characters a chunk."""
        return re.findall(r".{1,6}", call["arguments"], re.DOTALL) or [""]

    def usage(self, payload: dict[str, Any]) -> dict[str, Any]:
        arguments = sum(len(self.argument_pieces(c)) for c in self.calls)
        completion = len(self.pieces) + len(self.thoughts) + arguments
        usage: dict[str, Any] = wire.usage_body(
            wire.prompt_tokens_count(payload), completion
        )
        if self.thoughts and self.report_thoughts:
            usage["completion_tokens_details"] = {
                "reasoning_tokens": len(self.thoughts)
            }
        return usage

    def message(self) -> dict[str, Any]:
        """The assistant message of a non-streamed chat answer."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.pieces)}
        if self.thoughts:
            message[self.thought_field] = "".join(self.thoughts)
        if self.calls:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": f"call_{index}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for index, c in enumerate(self.calls)
            ]
        return message

    def chat_deltas(self) -> list[tuple[dict[str, Any], bool]]:
        """The deltas of a streamed chat answer after its role chunk."""
        deltas = [({self.thought_field: t}, True) for t in self.thoughts]
        deltas += [({"content": piece}, True) for piece in self.pieces]
        for index, call in enumerate(self.calls):
            opening = {
                "index": index,
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": call["name"], "arguments": ""},
            }
            deltas.append(({"tool_calls": [opening]}, False))
            for piece in self.argument_pieces(call):
                more = {"index": index, "function": {"arguments": piece}}
                deltas.append(({"tool_calls": [more]}, True))
        return deltas


def responses_events(
    b: Behaviour, payload: dict[str, Any], ids: dict[str, Any]
) -> tuple[Events, dict[str, Any]]:
    """A Responses API stream as vLLM sends it: `event:` lines, numbered
    events, a reasoning item first when the model thinks, and no [DONE]: the
    last event is response.completed (or .incomplete, .failed). Also returns
    the final response object (the non-streamed answer)."""
    limit = payload.get("max_output_tokens")
    count = min(b.tokens, limit) if isinstance(limit, int) else b.tokens
    thoughts = list(b.reasoning or [])
    prompt = wire.prompt_tokens_count(payload)
    usage = {
        "input_tokens": prompt,
        "output_tokens": count + len(thoughts),
        "total_tokens": prompt + count + len(thoughts),
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": len(thoughts)},
    }
    done = wire.response_object(**ids, text=wire.fake_text(count), usage=usage)
    end = b.responses_end
    done["status"] = end
    if end == "incomplete":
        done["incomplete_details"] = {"reason": "max_output_tokens"}
    shell = wire.response_object(**ids, text=None, usage=None)
    steps: list[tuple[str, dict[str, Any], bool]] = [
        ("response.created", {"response": shell}, False),
        ("response.in_progress", {"response": shell}, False),
    ]
    text = wire.fake_text(count)
    message = _message_item(f"msg_{ids['response_id']}", text)
    if thoughts:
        thinking = _reasoning_item(f"rs_{ids['response_id']}", "".join(thoughts))
        done["output"].insert(0, thinking)
        steps += _item_steps(thinking, 0, thoughts, "reasoning_text")
    steps += _item_steps(
        message,
        1 if thoughts else 0,
        [wire.fake_token(i) for i in range(count)],
        "output_text",
    )
    steps.append((f"response.{end}", {"response": done}, False))
    events = [
        (wire.sse({"type": kind, "sequence_number": n, **data}, event=kind), token)
        for n, (kind, data, token) in enumerate(steps)
    ]
    return events, done


def _item_steps(
    item: dict[str, Any], index: int, pieces: list[str], kind: str
) -> list[tuple[str, dict[str, Any], bool]]:
    """The events of one output item: added, its part, the deltas, done."""
    part = item["content"][0]
    at = {"item_id": item["id"], "output_index": index, "content_index": 0}
    opened = {**item, "status": "in_progress", "content": []}
    return [
        ("response.output_item.added", {"output_index": index, "item": opened}, False),
        ("response.content_part.added", {**at, "part": {**part, "text": ""}}, False),
        *[(f"response.{kind}.delta", {**at, "delta": piece}, True) for piece in pieces],
        (f"response.{kind}.done", {**at, "text": part["text"]}, False),
        ("response.content_part.done", {**at, "part": part}, False),
        ("response.output_item.done", {"output_index": index, "item": item}, False),
    ]


def _message_item(item_id: str, text: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}]
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": "completed",
        "content": content,
    }


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": text}]
    return {"type": "reasoning", "id": item_id, "summary": [], "content": content}


# -- the tokenizer ------------------------------------------------------------


def template_text(messages: Any) -> str:
    """The fake's chat template: the messages' texts, a line each. It adds no
    words, so a templated prompt counts as prompt_tokens_count does."""
    return "\n".join(wire.prompt_texts({"messages": messages}))


def tokenize_answer(b: Behaviour, payload: dict[str, Any]) -> dict[str, Any]:
    """POST /tokenize in the fake's dialect (Behaviour.tokenizer)."""
    if b.tokenizer == "llamacpp":
        # llama.cpp tokenises "content" only; "messages" it ignores.
        content = payload.get("content")
        words = content.split() if isinstance(content, str) else []
        return {"tokens": list(range(len(words)))}
    count = wire.prompt_tokens_count(payload)
    answer: dict[str, Any] = {"count": count, "tokens": list(range(count))}
    answer["max_model_len"] = b.context_window or 32768
    return answer


# -- context refusals, in each server's words ----------------------------------

# Styles that count max_tokens against the window, as those servers do.
_TOTAL_STYLES = frozenset({"vllm-total", "sglang-total"})


def context_refusal(
    b: Behaviour, payload: dict[str, Any]
) -> tuple[int, dict[str, Any]] | None:
    """The refusal of a prompt over Behaviour.context_window, or None."""
    window = b.context_window
    if window is None:
        return None
    prompt = wire.prompt_tokens_count(payload)
    asked = payload.get("max_completion_tokens") or payload.get("max_tokens") or 0
    if b.context_wording not in _TOTAL_STYLES:
        asked = 0
    if prompt + asked <= window:
        return None
    return context_refusal_body(b.context_wording, prompt, window, asked)


def context_refusal_body(
    style: str, prompt: int, window: int, asked: int = 0
) -> tuple[int, dict[str, Any]]:
    """(status, body) of a context refusal as each server words it."""
    vllm = f"This model's maximum context length is {window} tokens."
    messages = {
        "vllm": f"{vllm} However, your request has {prompt} input tokens. Please "
        "reduce the length of the input messages.",
        "vllm-total": f"{vllm} However, you requested {prompt + asked} tokens "
        f"({prompt} in the messages, {asked} in the completion). Please reduce the "
        "length of the messages or completion.",
        "vllm-engine": f"The decoder prompt (length {prompt}) is longer than the "
        f"maximum model length of {window}. Make sure that `max_model_len` is no "
        "smaller than the number of text tokens.",
        "sglang": f"The input ({prompt} tokens) is longer than the model's context "
        f"length ({window} tokens).",
        "sglang-total": "Requested token count exceeds the model's maximum context "
        f"length of {window} tokens. You requested a total of {prompt + asked} "
        f"tokens: {prompt} tokens from the input messages and {asked} tokens for "
        "the completion. Please reduce the number of tokens in the input messages "
        "or the completion to fit within the limit.",
        "llamacpp": f"request ({prompt} tokens) exceeds the available context size "
        f"({window} tokens), try increasing it",
        "llamacpp-old": "the request exceeds the available context size, try "
        "increasing it",
        "ollama": "the input length exceeds the context length",
        "ollama-prompt": "prompt too long; exceeded max context length by "
        f"{prompt - window} tokens",
    }
    message = messages[style]
    if style.startswith(("vllm", "sglang")):
        # vLLM's and SGLang's shape: top-level fields, an integer code.
        return 400, {
            "object": "error",
            "message": message,
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    if style.startswith("llamacpp"):
        error = {"code": 400, "message": message, "type": "exceed_context_size_error"}
        return 400, {"error": error | {"n_prompt_tokens": prompt, "n_ctx": window}}
    # Ollama's OpenAI-compatible endpoints wrap its error text.
    error = {"message": message, "type": "api_error", "param": None, "code": None}
    return 400, {"error": error}
