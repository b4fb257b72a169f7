"""The soak's fake backend: an aiohttp server speaking the OpenAI wire format,
with the models the soak's mix needs. It keeps nothing per request (unlike
tests/fakebackend.py, which records every request), so an hour of traffic
does not grow it.

- `soak-paced`: 64 content tokens, 20 ms apart, as a GPU server sends them;
- `soak-fast`: 64 tokens at once (and the non-streamed answers);
- `soak-dies`: 10 ms apart, and the connection is cut after 16 tokens, the
  way a backend that crashes mid-answer leaves it;
- `soak-embed`: embeddings.

A usage chunk ends a stream when `stream_options.include_usage` asks for it.

    python -m bench.soakbackend --port 8001     # prints "READY <port>"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time

from aiohttp import web

from bench.common import loop_run

TOKENS = 64
DYING_AFTER = 16
EMBEDDING_DIMENSIONS = 64
MODELS = {"soak-paced": 0.020, "soak-fast": 0.0, "soak-dies": 0.010}


def _event(model: str, delta: dict, finish: str | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-soak",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _usage_event(model: str, completion: int) -> bytes:
    payload = {
        "id": "chatcmpl-soak",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": completion,
            "total_tokens": 12 + completion,
        },
    }
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def models(_request: web.Request) -> web.Response:
    ids = [*MODELS, "soak-embed"]
    return web.json_response(
        {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]}
    )


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    model = body.get("model", "")
    delay = MODELS.get(model)
    if delay is None:
        return web.json_response(
            {"error": {"message": f"no model {model}", "type": "invalid_request"}},
            status=404,
        )
    if not body.get("stream"):
        return web.json_response(
            {
                "id": "chatcmpl-soak",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": " tok" * TOKENS},
                        "finish_reason": "length",
                    }
                ],
                "usage": {
                    "prompt_tokens": 12,
                    "completion_tokens": TOKENS,
                    "total_tokens": 12 + TOKENS,
                },
            }
        )
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    await response.write(_event(model, {"role": "assistant", "content": ""}))
    for index in range(TOKENS):
        if model == "soak-dies" and index == DYING_AFTER:
            # No last chunk, no [DONE]: the socket just closes.
            if request.transport is not None:
                request.transport.abort()
            return response
        if delay:
            await asyncio.sleep(delay)
        try:
            await response.write(_event(model, {"content": " tok"}))
        except ConnectionResetError:
            return response  # the proxy went away: its client left
    try:
        await response.write(_event(model, {}, finish="length"))
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(_usage_event(model, TOKENS))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response


async def embeddings(request: web.Request) -> web.Response:
    body = await request.json()
    inputs = body.get("input")
    count = len(inputs) if isinstance(inputs, list) else 1
    vector = [0.125] * EMBEDDING_DIMENSIONS
    return web.json_response(
        {
            "object": "list",
            "model": body.get("model"),
            "data": [
                {"object": "embedding", "index": i, "embedding": vector}
                for i in range(count)
            ],
            "usage": {"prompt_tokens": 4 * count, "total_tokens": 4 * count},
        }
    )


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve(port: int) -> None:
    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    # Bound here (SO_REUSEADDR) so that a restarted backend gets its port back
    # at once, as a restarted GPU server would.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    site = web.SockSite(runner, sock, backlog=1024)
    await site.start()
    print("READY", sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    loop_run(serve(args.port))


if __name__ == "__main__":
    main()
