"""OpenAI-shaped errors for the proxy.

Every failure the proxy reports, whatever its cause, leaves as
`{"error": {"message", "type", "param", "code"}}` with the status OpenAI clients
expect, so the SDK raises the right exception class and its retry logic behaves.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from apiproxy.contextwords import context_refusal_read


@dataclass
class ProxyError(Exception):
    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # What the meter records as the outcome (e.g. "rejected", "backend_error").
    outcome: str = "rejected"

    def body(self) -> bytes:
        return error_body(
            message=self.message, type_=self.type, code=self.code, param=self.param
        )

    def sse_event(self) -> bytes:
        return b"data: " + self.body() + b"\n\n"


def error_body(
    *, message: str, type_: str, code: str | None, param: str | None = None
) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    ).encode()


def invalid_request(message: str, *, param: str | None = None) -> ProxyError:
    return ProxyError(400, message, param=param)


def backend_unreachable(model: str) -> ProxyError:
    return ProxyError(
        502,
        f"The backend serving '{model}' is unreachable. Try again shortly.",
        type="api_error",
        code="backend_unreachable",
        outcome="backend_error",
    )


def backend_timeout(model: str) -> ProxyError:
    return ProxyError(
        504,
        f"The backend serving '{model}' did not answer in time.",
        type="api_error",
        code="backend_timeout",
        outcome="backend_error",
    )


def stream_interrupted(model: str) -> ProxyError:
    return ProxyError(
        502,
        f"The stream from the backend serving '{model}' broke off before the "
        "answer was complete.",
        type="api_error",
        code="backend_stream_interrupted",
        outcome="backend_error",
    )


def backend_overloaded(model: str, retry_after: int) -> ProxyError:
    return ProxyError(
        503,
        f"The backend serving '{model}' is overloaded. Retry in {retry_after} s "
        "or choose another model.",
        type="server_error",
        code="backend_overloaded",
        headers=[(b"retry-after", str(retry_after).encode())],
        outcome="backend_error",
    )


def backend_credentials_refused(model: str, status: int) -> ProxyError:
    """The backend refused the key Portico sent it: Portico's configuration,
    not the client's key, so never a 401/403 that the SDK would pin on them."""
    return ProxyError(
        502,
        f"The backend serving '{model}' refused Portico's credentials "
        f"(HTTP {status}). Your API key is fine: the portal's operators need to "
        "update the backend's key.",
        type="api_error",
        code="backend_auth_failed",
        outcome="backend_error",
    )


def backend_redirected(model: str, status: int) -> ProxyError:
    return ProxyError(
        502,
        f"The backend serving '{model}' answered with a redirect (HTTP {status}), "
        "which Portico does not follow: its base URL needs fixing.",
        type="api_error",
        code="backend_redirect",
        outcome="backend_error",
    )


_MEDIA_TYPE_SHOWN = re.compile(r"[^a-z0-9.+/-]")


def backend_answer_unexpected(model: str, *, got: str, wanted: str) -> ProxyError:
    """A 2xx of the wrong kind (an HTML login page, JSON for a stream): not
    relayed, because an SDK cannot read it and the page is not ours to show."""
    shown = _MEDIA_TYPE_SHOWN.sub("", got.lower())[:80] or "none"
    return ProxyError(
        502,
        f"The backend serving '{model}' answered with content type '{shown}' "
        f"where {wanted} was expected.",
        type="api_error",
        code="backend_bad_response",
        outcome="backend_error",
    )


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_SECRETISH = re.compile(r"\b(?:sk|key|token|bearer)[-_ :=]+\S{8,}", re.IGNORECASE)
_HOSTPORT = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b")


def upstream_message_sanitize(message: object, *, limit: int = 300) -> str:
    """A backend's error message, safe to show: no URLs, addresses or
    key-looking tokens (backends echo their own config in errors), bounded."""
    if not isinstance(message, str):
        return ""
    text = _URL.sub("[url]", message)
    text = _SECRETISH.sub("[redacted]", text)
    text = _HOSTPORT.sub("[address]", text)
    text = " ".join(text.split())
    return text[:limit]


def upstream_error_translate(
    status: int,
    body: bytes,
    *,
    model: str,
    endpoint: str = "chat/completions",
    window: int | None = None,
) -> ProxyError:
    """Turn a backend's error response into ours: status mapped, message
    sanitised, integer codes (llama.cpp, some vLLM versions) made strings, and
    a context refusal in any backend's words made the one Portico gives itself
    (`window`, the catalog's, stands in where the backend names none)."""
    raw, code, param, error = _error_fields(body, plain=status in _CONTEXT_STATUSES)
    message = upstream_message_sanitize(raw)
    if status in _CONTEXT_STATUSES:
        figures = context_refusal_read(raw, error)
        if figures is not None:
            return context_exceeded(
                endpoint=endpoint,
                window=figures.window or window,
                tokens=figures.tokens,
                at_least=figures.at_least,
                completion=figures.completion,
                excess=figures.excess,
            )
    if status in (429, 503):
        return backend_overloaded(model, retry_after=2)
    if status >= 500:
        return ProxyError(
            502,
            f"The backend serving '{model}' failed ({status})."
            + (f" {message}" if message else ""),
            type="api_error",
            code="backend_error",
            outcome="backend_error",
        )
    if status == 404:
        return ProxyError(
            404,
            message or f"The backend does not serve '{model}' right now.",
            code="model_not_found",
        )
    string_code = code if isinstance(code, str) else None
    return ProxyError(
        400 if status in (400, 413, 422) else status,
        message or f"The backend rejected the request ({status}).",
        code=string_code,
        param=param if isinstance(param, str) else None,
    )


def _error_fields(
    body: bytes, *, plain: bool
) -> tuple[str, object, object, dict[str, object]]:
    """(message, code, param, the error object) of a backend's error body:
    OpenAI's envelope, vLLM's top-level fields, Ollama's `{"error": "..."}`,
    or (with `plain`) a text body."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        text = body[:1000].decode("utf-8", "replace") if plain and body else ""
        return text, None, None, {}
    error = parsed.get("error", parsed)
    if isinstance(error, str):
        return error, None, None, {}
    if not isinstance(error, dict):
        return "", None, None, {}
    message = error.get("message")
    return (
        message if isinstance(message, str) else "",
        error.get("code"),
        error.get("param"),
        error,
    )


# -- Context refusals ---------------------------------------------------------
# One error for a prompt over the model's window, whether Portico refused it
# (apiproxy.contextfit) or the backend did, in whatever words the backend used.

# Statuses a backend refuses an over-long input with: 400 mostly, 413/422 from
# gateways, 500 from llama.cpp's and some Ollama versions' embeddings.
_CONTEXT_STATUSES = frozenset({400, 413, 422, 500})
_PARAM_OF_ENDPOINT = {
    "chat/completions": "messages",
    "completions": "prompt",
    "responses": "input",
    "embeddings": "input",
}


def context_exceeded(
    *,
    endpoint: str,
    window: int | None,
    tokens: int | None = None,
    at_least: bool = False,
    completion: int | None = None,
    excess: int | None = None,
) -> ProxyError:
    """The 400 for a prompt that does not fit: OpenAI's code and wording, the
    backend's figures where it gave them. Retrying it cannot succeed."""
    param = _PARAM_OF_ENDPOINT.get(endpoint, "messages")
    plural = param == "messages"
    subject = f"Your {param} {'come' if plural else 'comes'} to"
    them = "them" if plural else "it"
    if not window:
        text = f"{subject} more than this model's context window. Shorten {them}."
        return ProxyError(400, text, code="context_length_exceeded", param=param)
    text = f"This model's maximum context length is {window} tokens. {subject} "
    if tokens is not None and completion and tokens < window:
        text += (
            f"{tokens} tokens and max_tokens asks for {completion} more. Shorten "
            f"the {param} or lower max_tokens."
        )
    elif tokens is not None:
        text += f"{'at least ' if at_least else ''}{tokens} tokens. Shorten {them}."
    elif excess is not None:
        text += f"{excess} tokens more than that. Shorten {them}."
    else:
        text += f"more than that. Shorten {them}."
    return ProxyError(400, text, code="context_length_exceeded", param=param)
