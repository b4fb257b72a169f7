"""The lean ASGI app that serves the OpenAI API beside Django.

Until the proxy issue lands it answers every request with an OpenAI-shaped 404,
which is enough to prove the routing: these paths never touch Django middleware.
"""

from __future__ import annotations

import json
from typing import Any

# /v1/... and, for users of portals whose base URL ends in /api/, the OpenAI
# route names under /api/ (the portal's own /api/keys/ and the like stay Django's).
PROXY_PATH_PATTERN = (
    r"^(?:v1/|api/(?:models|chat/completions|completions|embeddings"
    r"|audio/transcriptions|responses)(?:/|$))"
)

Scope = dict[str, Any]


def error_body(
    *, message: str, type_: str, code: str | None, param: str | None = None
) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    ).encode()


async def send_json(send: Any, *, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def proxy_application(scope: Scope, receive: Any, send: Any) -> None:
    body = error_body(
        message=f"Unknown API route: {scope['method']} {scope['path']}",
        type_="invalid_request_error",
        code="unknown_url",
    )
    await send_json(send, status=404, body=body)
