"""How backends say "your prompt is longer than my context window".

vLLM (its versions differ), SGLang, llama.cpp and Ollama each refuse an
over-long input in their own words, some with the figures, some without.
`context_refusal_read` recognises them and takes the figures out, so that
apiproxy.errors can answer with the one error Portico also gives when it
refuses such a prompt itself (apiproxy.contextfit). Pure: no I/O, no Django.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ContextFigures:
    """What a backend's context refusal says; None where it does not say."""

    window: int | None = None
    tokens: int | None = None  # the prompt's tokens
    at_least: bool = False
    completion: int | None = None  # max_tokens, where it counted against it
    excess: int | None = None  # tokens over the window (Ollama)


def _wording(pattern: str) -> re.Pattern[str]:
    """`<name>` in a wording stands for a number, captured under that name
    (digits, maybe thousands separators or SGLang's trailing `.0`)."""
    return re.compile(
        re.sub(r"<(\w+)>", lambda m: rf"(?P<{m[1]}>\d[\d,]*)(?:\.0)?", pattern),
        re.IGNORECASE,
    )


# Most specific first. Copied from the servers' sources and issue reports;
# llama.cpp's measured against the demo backend (build b1-571d0d5).
_WORDINGS = tuple(
    _wording(pattern)
    for pattern in (
        # vLLM: "This model's maximum context length is 2048 tokens. However,
        # you requested 2100 tokens (100 in the messages, 2000 in the
        # completion)." and, for completions, "... tokens, however you
        # requested 2100 tokens (100 in your prompt; 2000 for the completion)".
        r"maximum context length is <window> tokens[.,] however,? you requested "
        r"<total> tokens \(<tokens> in (?:the messages|your prompt)[;,] "
        r"<completion> (?:in|for) the completion\)",
        # vLLM, newest: "... However, you requested 4096 output tokens and your
        # prompt contains at least 258049 input tokens, for a total of ...".
        r"maximum context length is <window> tokens\. however,? you requested "
        r"<completion> output tokens and your prompt contains (?:at least )?"
        r"<tokens> input tokens",
        # vLLM: "... However, your request has 3000 input tokens. Please reduce
        # the length of the input messages."
        r"maximum context length is <window> tokens[.,] however,? your request "
        r"has <tokens> input tokens",
        # vLLM, older: "... However, you requested 3000 tokens in the messages,
        # Please reduce the length of the messages." (or "in the input for").
        r"maximum context length is <window> tokens[.,] however,? you requested "
        r"<tokens> tokens in the",
        # vLLM: "'max_tokens' or 'max_completion_tokens' is too large: 2000.
        # This model's maximum context length is 2048 tokens and your request
        # has 100 input tokens (2000 > 2048 - 100)."
        r"is too large: <completion>\. this model's maximum context length is "
        r"<window> tokens and your request has <tokens> input tokens",
        # vLLM's engine: "The decoder prompt (length 3000) is longer than the
        # maximum model length of 2048." / "The prompt (total length 3000) is
        # too long to fit into the model (context length 2048)."
        r"prompt \((?:total )?length <tokens>\) is (?:longer than the maximum "
        r"model length of|too long to fit into the model \(context length) <window>",
        # SGLang (and vLLM behind some gateways): "Requested token count exceeds
        # the model's maximum context length of 2048 tokens. You requested a
        # total of 2100 tokens: 100 tokens from the input messages and 2000
        # tokens for the completion."
        r"maximum context length of <window> tokens\. you requested a total of "
        r"<total> tokens: <tokens> tokens from the input messages and "
        r"<completion> tokens for the completion",
        # SGLang: "The input (3000 tokens) is longer than the model's context
        # length (2048 tokens)." and its scheduler's "Input length (3000
        # tokens) exceeds the maximum allowed length (2048 tokens)."
        r"input \(<tokens> tokens\) is longer than the model's context length "
        r"\(<window> tokens\)",
        r"input length \(<tokens> tokens\) exceeds the maximum allowed length "
        r"\(<window> tokens\)",
        # llama.cpp: "request (2071 tokens) exceeds the available context size
        # (2048 tokens), try increasing it" (type exceed_context_size_error,
        # with n_prompt_tokens and n_ctx beside it).
        r"request \(<tokens> tokens\) exceeds the available context size "
        r"\(<window> tokens\)",
        # llama.cpp's embeddings, an HTTP 500: "input (3001 tokens) is too large
        # to process. increase the physical batch size (current batch size:
        # 2048)". The batch is what an input must fit there.
        r"input \(<tokens> tokens\) is too large to process\. increase the "
        r"physical batch size \(current batch size: <window>\)",
        # Ollama: "prompt too long; exceeded max context length by 4 tokens".
        r"prompt too long; exceeded max context length by <excess> tokens",
        # The window alone (OpenAI-style, vLLM's shortest).
        r"maximum context length (?:is|of) <window> tokens",
        # No figures: llama.cpp, older ("the request exceeds the available
        # context size, try increasing it"); Ollama ("the input length exceeds
        # the context length", "prompt too long; exceeded context length").
        r"exceeds the available context size|input length exceeds the context "
        r"length|prompt too long|context length exceeded|context_length_exceeded",
    )
)


def _number(text: str | None) -> int | None:
    return int(text.replace(",", "")) if text else None


def context_refusal_read(
    message: str, error: dict[str, object] | None = None
) -> ContextFigures | None:
    """The figures of a backend's refusal of an over-long input, or None when
    `message` (and the error object it came in) is about something else."""
    error = error or {}
    if error.get("type") == "exceed_context_size_error" or (
        "context_length_exceeded" in (error.get("code"), error.get("type"))
    ):
        message = message or "context_length_exceeded"
    for wording in _WORDINGS:
        match = wording.search(message[:2000])
        if match is None:
            continue
        found = {k: _number(v) for k, v in match.groupdict().items()}
        tokens, total = found.get("tokens"), found.get("total")
        completion = found.get("completion")
        if tokens is None and total is not None and completion is not None:
            tokens = total - completion
        # llama.cpp gives them as fields too: n_prompt_tokens, n_ctx.
        n_prompt, n_ctx = error.get("n_prompt_tokens"), error.get("n_ctx")
        return ContextFigures(
            window=found.get("window") or _count(n_ctx),
            tokens=tokens or _count(n_prompt),
            at_least="at least" in match.group(0).lower(),
            completion=completion,
            excess=found.get("excess"),
        )
    return None


def _count(value: object) -> int | None:
    """A positive count from a JSON field, or None."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None
