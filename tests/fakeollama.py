"""A fake Ollama on a loopback port: it holds at most `capacity` models in
memory and loads the others on demand, slowly, as the real one does.

It speaks what Portico uses of Ollama: the OpenAI routes (GET /v1/models with
`owned_by: "library"`, POST /v1/chat/completions streamed or not) and the
native GET /api/ps (models in memory, named with their `:latest` tag) and GET
/api/version. Requests are scheduled like Ollama's scheduler does it, one at a
time in arrival order: a request for a model in memory starts at once; one for
another model waits until the least recently used model has no request
running, evicts it, sleeps `load_seconds`, then starts. Requests behind a load
wait for it, whatever model they want (head-of-line, as in Ollama).

Everything it does is recorded: `fake.served` (each request: model, whether it
waited for a load, times) and `fake.loads` (each load: model, evicted model).

    with FakeOllama(models=["alpha", "beta"], capacity=1, load_seconds=0.3) as o:
        o.preload("alpha")
        ...  # o.base_url ends in /v1, like a Backend row's

From a shell (the benchmark): `python -m tests.fakeollama --port 0 ...` prints
`READY <port>`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
from collections import OrderedDict, defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Served:
    model: str
    arrived_at: float  # time.monotonic()
    started_at: float = 0.0  # the model was in memory and the request began
    waited_for_load: bool = False
    finished_at: float | None = None


@dataclass
class Load:
    model: str
    evicted: str | None
    started_at: float
    ended_at: float


@dataclass
class FakeOllama:
    models: list[str] = field(default_factory=lambda: ["alpha", "beta"])
    capacity: int = 1
    load_seconds: float = 0.3
    tokens: int = 8
    token_delay: float = 0.0
    owned_by: str = "library"
    ps_status: int = 200  # != 200: /api/ps fails (e.g. 500)
    host: str = "127.0.0.1"
    port: int = 0
    keep_records: bool = True

    def __post_init__(self) -> None:
        self.resident: OrderedDict[str, None] = OrderedDict()  # LRU first
        self.active: defaultdict[str, int] = defaultdict(int)
        self.served: list[Served] = []
        self.loads: list[Load] = []
        self.load_count = 0  # kept even without records
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[bool]]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._scheduler: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FakeOllama:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fakeollama", daemon=True
        )
        self._thread.start()
        self._call(self._serve())
        return self

    def close(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def preload(self, *models: str) -> None:
        """Put models in memory at once, as if loaded earlier (no record)."""
        for model in models:
            self.resident[model] = None
            while len(self.resident) > self.capacity:
                self.resident.popitem(last=False)

    def held(self) -> list[str]:
        return list(self.resident)

    def served_models(self) -> list[str]:
        return [record.model for record in self.served]

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _serve(self) -> None:
        self._queue = asyncio.Queue()
        self._scheduler = asyncio.get_running_loop().create_task(self._schedule())
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/api/ps", self._ps)
        app.router.add_get("/api/version", self._version)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/fake/stats", self._stats)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.1
        )
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._scheduler is not None:
            self._scheduler.cancel()
            with suppress(asyncio.CancelledError):
                await self._scheduler

    # -- the scheduler -----------------------------------------------------------

    async def _schedule(self) -> None:
        """Ollama's processPending, reduced: one request at a time, in order."""
        assert self._queue is not None
        while True:
            model, ready = await self._queue.get()
            if ready.done():  # the client went away while waiting
                continue
            loaded = False
            if model not in self.resident:
                await self._load(model)
                loaded = True
            self.resident.move_to_end(model)
            if ready.done():
                continue
            self.active[model] += 1
            ready.set_result(loaded)

    async def _load(self, model: str) -> None:
        evicted = None
        if len(self.resident) >= self.capacity:
            evicted = next(iter(self.resident))
            # Polling keeps the fake small (an Event per model would not).
            while self.active[evicted] > 0:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            del self.resident[evicted]
        started = time.monotonic()
        await asyncio.sleep(self.load_seconds)
        self.resident[model] = None
        self.load_count += 1
        if self.keep_records:
            self.loads.append(Load(model, evicted, started, time.monotonic()))

    async def _admitted(self, model: str, record: Served) -> None:
        assert self._queue is not None
        ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put((model, ready))
        try:
            record.waited_for_load = await ready
        except asyncio.CancelledError:
            if ready.done() and not ready.cancelled():
                self.active[model] -= 1
            raise
        record.started_at = time.monotonic()

    # -- HTTP ------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        data = [
            {
                "id": m,
                "object": "model",
                "created": 1_700_000_000,
                "owned_by": self.owned_by,
            }
            for m in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _ps(self, request: web.Request) -> web.Response:
        if self.ps_status != 200:
            return web.json_response({"error": "no"}, status=self.ps_status)
        entries = []
        for model in self.resident:
            name = model if ":" in model else f"{model}:latest"
            entries.append({"name": name, "model": name, "size": 1, "size_vram": 1})
        return web.json_response({"models": entries})

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.0.0-fake"})

    async def _stats(self, request: web.Request) -> web.Response:
        """Not Ollama's: what the benchmark reads after a run."""
        return web.json_response({"loads": self.load_count, "held": self.held()})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        model = payload.get("model")
        if model not in self.models:
            return web.json_response(
                {"error": {"message": f"model '{model}' not found"}}, status=404
            )
        record = Served(model=model, arrived_at=time.monotonic())
        if self.keep_records:
            self.served.append(record)
        await self._admitted(model, record)
        try:
            if payload.get("stream"):
                return await self._stream(request, payload, model)
            await asyncio.sleep(self.token_delay * self.tokens)
            return web.json_response(_completion(model, self._text(), self.tokens))
        finally:
            self.active[model] -= 1
            record.finished_at = time.monotonic()

    async def _stream(
        self, request: web.Request, payload: dict[str, Any], model: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_sse(_chunk(model, {"role": "assistant", "content": ""})))
        for index in range(self.tokens):
            if index and self.token_delay:
                await asyncio.sleep(self.token_delay)
            await response.write(_sse(_chunk(model, {"content": f" tok{index}"})))
        await response.write(_sse(_chunk(model, {}, finish="stop")))
        if (payload.get("stream_options") or {}).get("include_usage"):
            usage = _usage(self.tokens)
            await response.write(
                _sse({**_chunk(model, {}), "choices": [], "usage": usage})
            )
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _text(self) -> str:
        return "".join(f" tok{index}" for index in range(self.tokens))


def _usage(tokens: int) -> dict[str, int]:
    return {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": 5 + tokens}


def _chunk(
    model: str, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fakeollama",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _completion(model: str, text: str, tokens: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fakeollama",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(tokens),
    }


def _sse(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a fake Ollama.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--models", default="alpha,beta")
    parser.add_argument("--capacity", type=int, default=1)
    parser.add_argument("--load-seconds", type=float, default=2.0)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--token-delay", type=float, default=0.01)
    args = parser.parse_args()
    fake = FakeOllama(
        models=args.models.split(","),
        capacity=args.capacity,
        load_seconds=args.load_seconds,
        tokens=args.tokens,
        token_delay=args.token_delay,
        port=args.port,
        keep_records=False,
    )
    with fake:
        print(f"READY {fake.port}", flush=True)
        with suppress(KeyboardInterrupt):
            threading.Event().wait()  # until SIGTERM


if __name__ == "__main__":
    main()
