"""A fast fake OpenAI backend for the benchmark: a hand-written HTTP/1.1 server
on a bare asyncio protocol (uvloop when installed), so that the backend costs
as little CPU as possible and the ratios measure Portico, not the fake.

Unlike tests/fakebackend.py it records nothing and checks little. It serves:

- GET  /v1/models: the models `bench-<N>ms` for each `--delays` value;
- POST /v1/chat/completions: 64 content tokens. Streamed (chunked SSE, one
  write per token, N ms apart for model `bench-<N>ms`; 0 ms still yields to the
  loop between tokens, as a real server flushes per token) with a usage chunk
  when `stream_options.include_usage` is set; otherwise one JSON answer.

    python -m bench.backend --port 0      # prints "READY <port>" when listening
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys

from bench.common import loop_run

TOKENS = 64
_MODEL = re.compile(rb'"model"\s*:\s*"bench-(\d{1,5})ms"')
_STREAM = re.compile(rb'"stream"\s*:\s*true')
_USAGE = re.compile(rb'"include_usage"\s*:\s*true')
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def _chunk(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(model: str, delta: dict, finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


class Frames:
    """Every byte the backend sends for one model, built once."""

    def __init__(self, model: str) -> None:
        self.head = _chunk(_event(model, {"role": "assistant"}))
        self.token = _chunk(_event(model, {"content": " tok"}))
        usage = {"prompt_tokens": 12, "completion_tokens": TOKENS, "total_tokens": 76}
        tail = _event(model, {}, "length")
        self.tail_plain = _chunk(tail + b"data: [DONE]\n\n") + b"0\r\n\r\n"
        usage_event = (
            b"data: "
            + json.dumps(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion.chunk",
                    "created": 1700000000,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                },
                separators=(",", ":"),
            ).encode()
            + b"\n\n"
        )
        self.tail_usage = (
            _chunk(tail + usage_event + b"data: [DONE]\n\n") + b"0\r\n\r\n"
        )
        answer = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " tok" * TOKENS},
                    "finish_reason": "length",
                }
            ],
            "usage": usage,
        }
        body = json.dumps(answer, separators=(",", ":")).encode()
        self.json = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)


def models_response(delays: list[int]) -> bytes:
    data = [
        {
            "id": f"bench-{delay}ms",
            "object": "model",
            "created": 1700000000,
            "owned_by": "bench",
            "max_model_len": 8192,
        }
        for delay in delays
    ]
    body = json.dumps({"object": "list", "data": data}).encode()
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )


NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


class BackendProtocol(asyncio.Protocol):
    frames: dict[int, Frames] = {}
    models_answer = b""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        """Answer the next complete request in the buffer, if there is one."""
        end = self.buffer.find(b"\r\n\r\n")
        if end == -1:
            return
        head = self.buffer[: end + 4]
        match = _LENGTH.search(head)
        length = int(match.group(1)) if match else 0
        if len(self.buffer) < end + 4 + length:
            return
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        transport = self.transport
        if transport is None:
            return
        if head.startswith(b"GET /v1/models"):
            transport.write(self.models_answer)
            return self._next()
        if not head.startswith(b"POST /v1/chat/completions"):
            transport.write(NOT_FOUND)
            return self._next()
        model = _MODEL.search(body)
        delay = int(model.group(1)) if model else 0
        frames = self.frames.get(delay)
        if frames is None:
            transport.write(NOT_FOUND)
            return self._next()
        if not _STREAM.search(body):
            transport.write(frames.json)
            return self._next()
        self.busy = True
        asyncio.get_running_loop().create_task(
            self._stream(frames, delay / 1000, bool(_USAGE.search(body)))
        )

    async def _stream(self, frames: Frames, delay: float, usage: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        transport.write(STREAM_HEAD + frames.head)
        for _ in range(TOKENS):
            await asyncio.sleep(delay)
            if self.transport is None:
                return  # the client (Portico) went away: stop generating
            transport.write(frames.token)
        transport.write(frames.tail_usage if usage else frames.tail_plain)
        self.busy = False
        self._next()


async def serve(host: str, port: int, delays: list[int]) -> None:
    BackendProtocol.frames = {delay: Frames(f"bench-{delay}ms") for delay in delays}
    BackendProtocol.models_answer = models_response(delays)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(BackendProtocol, host, port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--delays", default="0,20", help="milliseconds between tokens, one model each"
    )
    args = parser.parse_args(argv)
    delays = sorted({int(value) for value in args.delays.split(",")})
    try:
        loop_run(serve(args.host, args.port, delays))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
