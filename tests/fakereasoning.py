"""A tiny OpenAI-speaking reasoning model on a loopback port, for the chat's
thinking tests: it streams its thoughts as `delta.reasoning_content` (llama.cpp,
vLLM) or `delta.reasoning` (newer vLLM), slowly, before the answer's
`delta.content`, and keeps the body of every request it receives.

Kept apart from tests/fakebackend.py on purpose: a few lines of aiohttp on its
own loop in its own thread, so the chat's tests do not depend on how the
general fake grows.

    with FakeReasoner(thoughts=["Hm, ", "blue."], answer=["Blue."]) as fake:
        model_register(fake, name="thinker")
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from tests.threadedserver import ThreadedServer


class FakeReasoner:
    def __init__(
        self,
        *,
        model: str = "fake-thinker",
        thoughts: Sequence[str] = ("Let me think. ", "Step one. ", "Step two."),
        answer: Sequence[str] = ("The ", "answer."),
        delay: float = 0.1,
        field: str = "reasoning_content",
    ) -> None:
        self.model = model
        self.thoughts = list(thoughts)
        self.answer = list(answer)
        self.delay = delay  # seconds before each thought and answer piece
        self.field = field  # "reasoning_content" or "reasoning"
        self.requests: list[dict[str, Any]] = []  # chat request bodies, in order
        self._id = ""  # the answer being streamed
        self._server = ThreadedServer(self._app, name="fakereasoning")

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeReasoner:
        self._server.start()
        return self

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> FakeReasoner:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _models(self, request: web.Request) -> web.Response:
        entry = {"id": self.model, "object": "model", "owned_by": "fake"}
        return web.json_response({"object": "list", "data": [entry]})

    def _event(
        self,
        delta: dict[str, Any] | None,
        finish_reason: str | None = None,
        usage: dict[str, int] | None = None,
    ) -> bytes:
        body: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": []
            if delta is None
            else [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        if usage is not None:
            body["usage"] = usage
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        self.requests.append(payload)
        self._id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(self._event({"role": "assistant", "content": ""}))
        pieces = [(self.field, t) for t in self.thoughts]
        pieces += [("content", a) for a in self.answer]
        for name, text in pieces:
            await asyncio.sleep(self.delay)
            # As vLLM sends them: the other field is null, not absent.
            other = "content" if name != "content" else self.field
            await response.write(self._event({name: text, other: None}))
        await response.write(self._event({}, finish_reason="stop"))
        n = len(pieces)
        usage = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}
        await response.write(self._event(None, usage=usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
