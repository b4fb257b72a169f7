"""OpenAI-shaped errors for the proxy.

Every failure the proxy reports, whatever its cause, leaves as
`{"error": {"message", "type", "param", "code"}}` with the status OpenAI clients
expect, so the SDK raises the right exception class and its retry logic behaves.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field


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


def upstream_error_translate(status: int, body: bytes, *, model: str) -> ProxyError:
    """Turn a backend's error response into ours: status mapped, message
    sanitised, integer codes (llama.cpp, some vLLM versions) made strings."""
    message = ""
    code: object = None
    param: object = None
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict):
            message = upstream_message_sanitize(error.get("message"))
            code = error.get("code")
            param = error.get("param")
        elif isinstance(error, str):
            message = upstream_message_sanitize(error)
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
    if (
        string_code is None
        and "context" in message.lower()
        and "length" in message.lower()
    ):
        string_code = "context_length_exceeded"
    return ProxyError(
        400 if status in (400, 413, 422) else status,
        message or f"The backend rejected the request ({status}).",
        code=string_code,
        param=param if isinstance(param, str) else None,
    )
