"""A real OpenAI-speaking HTTP server on a loopback port, for tests and scripts.

The server is aiohttp.web on its own event loop in its own thread, so sync tests,
async tests and the proxy under test can all talk to it over real sockets. Tests
steer it through `fake.behaviour` (every request), `fake.for_model(name, ...)`
(requests naming that model: the catalog's upstream model names make this the
natural per-request switch through the proxy) and `fake.script(...)` (one-shot
overrides consumed by the next POSTs in order). Everything it receives is kept in
`fake.received`, including whether the client went away mid-request.

    with FakeBackend() as fake:
        fake.behaviour.tokens = 3
        client = OpenAI(base_url=fake.base_url, api_key="x")

From a shell: `python -m tests.fakebackend --port 8001 --token-delay 0.02`.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, fields, replace
from typing import Any

from aiohttp import web

from tests.fakebackend_handlers import app_build
from tests.fakebackend_payloads import INTERNAL_SECRET, INTERNAL_URL, fake_text

__all__ = [
    "INTERNAL_SECRET",
    "INTERNAL_URL",
    "Behaviour",
    "FakeBackend",
    "Received",
    "fake_text",
]


@dataclass
class Behaviour:
    """How the fake answers. Every field can be overridden per model or per request."""

    # GET /v1/models: ids, or dicts merged into the entry (e.g. max_model_len).
    # Ids are sent as given, hostile ones too (control characters, 300 chars).
    models: list[str | dict[str, Any]] = field(
        default_factory=lambda: ["fake-chat", "fake-embed", "whisper-fake"]
    )
    models_status: int = 200
    models_payload: Any = None  # sent verbatim by GET /v1/models when set
    models_delay: float = 0.0  # seconds before GET /v1/models answers
    api_key: str | None = None  # when set, /v1/* needs "Authorization: Bearer <it>"
    health_status: int = 200
    # Generation.
    tokens: int = 8  # capped by the request's max_tokens (finish_reason "length")
    # When set, the answer is this text (one token per word, whitespace kept)
    # instead of "tok0 tok1 ...": e.g. hostile markup for the chat's XSS tests.
    text: str | None = None
    token_delay: float = 0.0  # seconds between content chunks
    first_byte_delay: float = 0.0  # seconds before the status line
    usage: str = "asked"  # "asked" (stream_options.include_usage), "never", "always"
    # Failures. Chunk counts include every `data:` event (the role chunk is one).
    status: int = 200  # >= 400: answer with that error instead
    retry_after: str | None = None  # Retry-After header on error answers
    error_body: Any = None  # dict (JSON) or str (text) instead of the stock body
    hang: bool = False  # accept the request, never send a byte
    hang_after_chunks: int | None = None  # go silent mid-stream
    die_after_chunks: int | None = None  # close the connection abruptly
    error_after_chunks: int | None = None  # send an SSE error event, then end
    end_after_chunks: int | None = None  # end the stream cleanly, no [DONE]
    linger_after_done: float = 0.0  # seconds the stream stays open after [DONE]
    # A backend that is not to be trusted (the proxy must not believe it).
    pieces: list[str] | None = None  # the answer verbatim, one chunk per piece
    usage_reported: dict[str, Any] | None = None  # merged over the true usage
    content_type: str | None = None  # Content-Type of successful answers
    redirect_to: str | None = None  # answer with a 307 to this URL instead
    # What is generated besides text (tests/fakebackend_streams.py).
    reasoning: list[str] | None = None  # thoughts, streamed before the answer
    reasoning_field: str = "reasoning_content"  # or "reasoning" (newer vLLM)
    reasoning_usage: bool = True  # report completion_tokens_details.reasoning_tokens
    # Tool calls instead of text: [{"name": ..., "arguments": "{...}"}].
    tool_calls: list[dict[str, str]] | None = None
    responses_end: str = "completed"  # a Responses stream's end: or incomplete, failed
    # The context window: prompts (words) over it are refused in the words of
    # `context_wording`: vllm, vllm-total, vllm-engine, sglang, sglang-total
    # (the -total ones count max_tokens too), llamacpp, llamacpp-old, ollama,
    # ollama-prompt.
    context_window: int | None = None
    context_wording: str = "vllm"
    # The tokenizer at the server root: "vllm" (POST /tokenize with model and
    # messages or prompt: count, max_model_len), "llamacpp" (/apply-template,
    # then /tokenize of the content), "" (none: 404).
    tokenizer: str = "vllm"
    tokenizer_delay: float = 0.0  # seconds before /tokenize answers
    # Other endpoints.
    embedding_dim: int = 8
    transcription_text: str = "the quick brown fox"


_BEHAVIOUR_FIELDS = frozenset(f.name for f in fields(Behaviour))


def _checked(overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - _BEHAVIOUR_FIELDS
    if unknown:
        raise TypeError(f"Unknown fake backend behaviour: {sorted(unknown)}")
    return overrides


@dataclass
class Received:
    """One request as the fake saw it. Times are time.monotonic() readings."""

    id: int
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes = b""  # empty for multipart: see `form`
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)  # files: name/size/type
    started_at: float = 0.0
    finished_at: float | None = None
    status: int | None = None
    chunks_sent: int = 0
    sent: bytes = b""  # a stream's bytes as written, for byte-for-byte checks
    cancelled: bool = False  # the client went away before the answer ended
    cancelled_at: float | None = None

    @property
    def model(self) -> str | None:
        if isinstance(self.json, dict):
            return self.json.get("model")
        return self.form.get("model")


class FakeBackend:
    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, keep_records: bool = True
    ) -> None:
        self.host = host
        self.port = port
        # Long-running script use (load tests) turns recording off to stay small.
        self.keep_records = keep_records
        self.behaviour = Behaviour()
        self.per_model: dict[str, dict[str, Any]] = {}
        self.received: list[Received] = []
        self._script: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.stopping = False

    # -- lifecycle -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What an OpenAI client (or a Backend row) is given: ends in /v1."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    def start(self) -> FakeBackend:
        """Serve on the configured port (a free one the first time if 0)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="fakebackend", daemon=True
            )
            self._thread.start()
        if self._runner is None:
            self._call(self._serve())
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until start() again."""
        if self._runner is not None:
            self.stopping = True
            try:
                self._call(self._runner.cleanup())
            finally:
                self._runner = None
                self.stopping = False

    def close(self) -> None:
        self.stop()
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()
            self._loop = self._thread = None

    @contextmanager
    def refusing(self) -> Iterator[None]:
        """Refuse connections inside the block, then serve again on the same port."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def __enter__(self) -> FakeBackend:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _serve(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        app = app_build(self)
        # handler_cancellation: a client disconnect cancels the handler, which is
        # how the fake sees a cancellation even while it is silent (hang, delay).
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    # -- steering and inspection ---------------------------------------------

    def for_model(self, model: str, **overrides: Any) -> None:
        """Requests naming `model` behave differently (merged over `behaviour`)."""
        self.per_model[model] = {**self.per_model.get(model, {}), **_checked(overrides)}

    def script(self, *overrides: dict[str, Any]) -> None:
        """One-shot overrides for the next POSTs, in order (e.g. 503, then fine)."""
        with self._changed:
            self._script.extend(_checked(dict(item)) for item in overrides)

    def reset(self) -> None:
        with self._changed:
            self.behaviour = Behaviour()
            self.per_model.clear()
            self._script.clear()
            self.received.clear()

    def requests(self, path: str | None = None) -> list[Received]:
        with self._changed:
            return [r for r in self.received if path is None or r.path == path]

    def last(self, path: str | None = None) -> Received:
        found = self.requests(path)
        if not found:
            raise AssertionError(f"The fake backend received nothing at {path}")
        return found[-1]

    def wait_for(
        self, predicate: Callable[[FakeBackend], bool], timeout: float = 5.0
    ) -> bool:
        """Block until predicate(self) holds. Never call it on a loop you need."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout=timeout)

    async def wait_for_async(
        self, predicate: Callable[[FakeBackend], bool], within: float = 5.0
    ) -> bool:
        """Like wait_for, for async tests: polls without blocking their loop."""
        deadline = time.monotonic() + within
        while not predicate(self):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def wait_for_cancellation(self, timeout: float = 5.0) -> Received:
        if not self.wait_for(lambda f: any(r.cancelled for r in f.received), timeout):
            raise AssertionError(f"No request was cancelled within {timeout}s")
        return next(r for r in self.requests() if r.cancelled)

    # -- used by the HTTP handlers (tests/fakebackend_handlers.py) -------------

    def record_start(
        self, *, method: str, path: str, headers: dict[str, str]
    ) -> Received:
        with self._changed:
            record = Received(
                id=len(self.received) + 1,
                method=method,
                path=path,
                headers=headers,
                started_at=time.monotonic(),
            )
            if self.keep_records:
                self.received.append(record)
                self._changed.notify_all()
        return record

    def resolve(self, model: Any, *, scripted: bool = True) -> Behaviour:
        """The behaviour for one request: base, then per-model, then scripted
        (not for the tokenizer's requests, which consume no script)."""
        with self._changed:
            queued = self._script.pop(0) if self._script and scripted else {}
        per_model = self.per_model.get(model, {}) if isinstance(model, str) else {}
        return replace(self.behaviour, **{**per_model, **queued})

    def touch(self) -> None:
        with self._changed:
            self._changed.notify_all()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake OpenAI backend.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--models", default="fake-chat,fake-embed,whisper-fake")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--token-delay", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeBackend(host=args.host, port=args.port, keep_records=False)
    fake.behaviour.models = list(args.models.split(","))
    fake.behaviour.tokens = args.tokens
    fake.behaviour.token_delay = args.token_delay
    with fake:
        print(f"Fake OpenAI backend at {fake.base_url} (Ctrl-C stops it)")
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
