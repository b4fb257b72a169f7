"""The fake backend's HTTP side: routes, recording middleware, streaming.

Split from tests/fakebackend.py (lifecycle, steering, inspection) so each stays
readable; bodies come from tests/fakebackend_payloads.py.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from tests import fakebackend_payloads as wire
from tests.fakebackend_streams import (
    Answer,
    context_refusal,
    responses_events,
    template_text,
    tokenize_answer,
)

if TYPE_CHECKING:
    from tests.fakebackend import Behaviour, FakeBackend, Received

Events = list[tuple[bytes, bool]]  # (SSE bytes, is a content token)
RECORD: web.RequestKey[Received] = web.RequestKey("record")


def app_build(fake: FakeBackend) -> web.Application:
    handlers = _Handlers(fake)
    app = web.Application(middlewares=[handlers.record], client_max_size=64 << 20)
    app.router.add_get("/health", handlers.health)
    app.router.add_get("/v1/models", handlers.models)
    app.router.add_get("/v1/models/{model:.+}", handlers.model)
    app.router.add_post("/v1/chat/completions", handlers.chat)
    app.router.add_post("/v1/completions", handlers.completions)
    app.router.add_post("/v1/embeddings", handlers.embeddings)
    app.router.add_post("/v1/audio/transcriptions", handlers.transcriptions)
    app.router.add_post("/v1/responses", handlers.responses)
    # Native endpoints at the server root, as vLLM and llama.cpp have them.
    app.router.add_post("/tokenize", handlers.tokenize)
    app.router.add_post("/apply-template", handlers.apply_template)
    return app


class _Handlers:
    def __init__(self, fake: FakeBackend) -> None:
        self.fake = fake

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        fake = self.fake
        record = fake.record_start(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        request[RECORD] = record
        try:
            # Multipart bodies are left for the handler to parse (see `form`).
            if not request.content_type.startswith("multipart/"):
                record.body = await request.read()
                with suppress(ValueError):
                    record.json = json.loads(record.body) if record.body else None
            key = fake.behaviour.api_key
            authorization = request.headers.get("Authorization")
            if key and request.path.startswith("/v1/"):
                if authorization != f"Bearer {key}":
                    response: web.StreamResponse = _error(401, fake.behaviour)
                    record.status = 401
                    return response
            response = await handler(request)
            record.status = response.status
            return response
        except (asyncio.CancelledError, ConnectionResetError):
            if not fake.stopping:
                record.cancelled = True
                record.cancelled_at = time.monotonic()
            raise
        finally:
            record.finished_at = time.monotonic()
            fake.touch()

    async def health(self, request: web.Request) -> web.Response:
        status = self.fake.behaviour.health_status
        body = {"status": "ok" if status == 200 else "error"}
        return web.json_response(body, status=status)

    async def models(self, request: web.Request) -> web.Response:
        b = self.fake.behaviour
        if b.models_delay:
            await asyncio.sleep(b.models_delay)
        if b.models_status != 200:
            return _error(b.models_status, b)
        if isinstance(b.models_payload, str):
            return web.Response(text=b.models_payload, content_type="text/plain")
        if b.models_payload is not None:
            return web.json_response(b.models_payload)
        return web.json_response({"object": "list", "data": self._model_entries()})

    async def model(self, request: web.Request) -> web.Response:
        for entry in self._model_entries():
            if entry["id"] == request.match_info["model"]:
                return web.json_response(entry)
        return _error(404, self.fake.behaviour)

    def _model_entries(self) -> list[dict[str, Any]]:
        base = {"object": "model", "created": 1_700_000_000, "owned_by": "fake"}
        return [
            base | ({"id": item} if isinstance(item, str) else item)
            for item in self.fake.behaviour.models
        ]

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _generate(
        self, request: web.Request, *, chat: bool
    ) -> web.StreamResponse:
        payload = request[RECORD].json
        if not isinstance(payload, dict):
            return _error(400, self.fake.behaviour)
        b = self.fake.resolve(payload.get("model"))
        early = await _before_answer(b)
        if early is not None:
            return early
        refusal = context_refusal(b, payload)
        if refusal is not None:
            return web.json_response(refusal[1], status=refusal[0])
        answer = Answer.plan(b, payload)
        usage = answer.usage(payload) | (b.usage_reported or {})
        ids = {
            "request_id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:12]}",
            "model": str(payload.get("model")),
            "created": int(time.time()),
        }
        if not payload.get("stream"):
            await asyncio.sleep(b.token_delay * len(answer.pieces))
            build = wire.chat_completion_body if chat else wire.completion_body
            text = "".join(answer.pieces)
            body = build(
                **ids, text=text, finish_reason=answer.finish,
                usage=None if b.usage == "never" else usage,
            )  # fmt: skip
            if chat:
                body["choices"][0]["message"] = answer.message()
            return _json_answer(body, b)
        asked = bool((payload.get("stream_options") or {}).get("include_usage"))

        def chunk(
            delta: dict[str, Any] | None, finish_reason: str | None = None
        ) -> bytes:
            if chat:
                body = wire.chat_chunk(
                    **ids, delta=delta or {}, finish_reason=finish_reason,
                    with_usage_field=asked,
                )  # fmt: skip
            else:
                body = wire.completion_chunk(
                    **ids, text=(delta or {}).get("content", ""),
                    finish_reason=finish_reason, with_usage_field=asked,
                )  # fmt: skip
            return wire.sse(body)

        role = {"content": "", "role": "assistant"}
        events: Events = [(chunk(role), False)] if chat else []
        events += [(chunk(delta), token) for delta, token in answer.chat_deltas()]
        events.append((chunk(None, answer.finish), False))
        if b.usage == "always" or (b.usage == "asked" and asked):
            object_ = "chat.completion.chunk" if chat else "text_completion"
            body = wire.usage_chunk(**ids, object_=object_, usage=usage)
            events.append((wire.sse(body), False))
        events.append((wire.sse("[DONE]"), False))
        return await self._stream(request, b, events)

    async def _stream(
        self, request: web.Request, b: Behaviour, events: Events
    ) -> web.StreamResponse:
        record = request[RECORD]
        content_type = b.content_type or "text/event-stream"
        response = web.StreamResponse(
            headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        tokens_sent = 0
        for data, is_token in events:
            sent = record.chunks_sent
            if sent == b.die_after_chunks and request.transport is not None:
                # Abrupt death: no terminating chunk, so the client sees a
                # broken body rather than a clean end.
                request.transport.close()
                return response
            if sent == b.end_after_chunks:
                break
            if sent == b.hang_after_chunks:
                await asyncio.Event().wait()
            if sent == b.error_after_chunks:
                error = {
                    "error": {
                        "message": "backend failed mid-stream",
                        "type": "server_error",
                        "code": 500,
                    }
                }
                await response.write(wire.sse(error))
                await response.write(wire.sse("[DONE]"))
                await asyncio.sleep(b.linger_after_done)
                return response
            if is_token and tokens_sent and b.token_delay:
                await asyncio.sleep(b.token_delay)
            await response.write(data)
            record.sent += data
            record.chunks_sent += 1
            tokens_sent += is_token
        await asyncio.sleep(b.linger_after_done)
        await response.write_eof()
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        payload = request[RECORD].json
        if not isinstance(payload, dict) or not payload.get("input"):
            return _error(400, self.fake.behaviour)
        b = self.fake.resolve(payload.get("model"))
        early = await _before_answer(b)
        if early is not None:
            return early
        raw = payload["input"]
        single = isinstance(raw, str) or isinstance(raw[0], int)
        body = wire.embeddings_body(
            model=str(payload.get("model")),
            inputs=[raw] if single else list(raw),
            dimensions=int(payload.get("dimensions") or b.embedding_dim),
            encoding_format=payload.get("encoding_format") or "float",
        )
        return _json_answer(body, b)

    async def transcriptions(self, request: web.Request) -> web.Response:
        record = request[RECORD]
        try:
            form = await request.post()
        except (BadHttpMessage, ValueError):  # a malformed multipart part
            return _error(400, self.fake.behaviour)
        for name, value in form.items():
            if isinstance(value, web.FileField):
                record.form[name] = {
                    "filename": value.filename,
                    "size": len(value.file.read()),
                    "content_type": value.content_type,
                }
            else:
                record.form[name] = value
        b = self.fake.resolve(record.form.get("model"))
        early = await _before_answer(b)
        if early is not None:
            return early
        if "file" not in record.form:
            return _error(400, b)
        response_format = record.form.get("response_format", "json")
        if response_format in ("text", "srt", "vtt"):
            return web.Response(text=b.transcription_text)
        body: dict[str, Any] = {"text": b.transcription_text}
        if response_format == "verbose_json":
            body |= {"task": "transcribe", "language": "en", "duration": 1.0}
            body["segments"] = []
        return web.json_response(body)

    async def responses(self, request: web.Request) -> web.StreamResponse:
        payload = request[RECORD].json
        if not isinstance(payload, dict):
            return _error(400, self.fake.behaviour)
        b = self.fake.resolve(payload.get("model"))
        early = await _before_answer(b)
        if early is not None:
            return early
        refusal = context_refusal(b, payload)
        if refusal is not None:
            return web.json_response(refusal[1], status=refusal[0])
        ids = {
            "response_id": f"resp_{uuid.uuid4().hex[:12]}",
            "model": str(payload.get("model")),
            "created": int(time.time()),
        }
        events, done = responses_events(b, payload, ids)
        if not payload.get("stream"):
            return _json_answer(done, b)
        return await self._stream(request, b, events)

    async def tokenize(self, request: web.Request) -> web.Response:
        payload = request[RECORD].json
        if not isinstance(payload, dict):
            return _error(400, self.fake.behaviour)
        b = self.fake.resolve(payload.get("model"), scripted=False)
        if not b.tokenizer:
            return web.json_response({"detail": "Not Found"}, status=404)
        await asyncio.sleep(b.tokenizer_delay)
        return web.json_response(tokenize_answer(b, payload))

    async def apply_template(self, request: web.Request) -> web.Response:
        payload = request[RECORD].json
        b = self.fake.resolve(None, scripted=False)
        if b.tokenizer != "llamacpp" or not isinstance(payload, dict):
            return web.json_response({"detail": "Not Found"}, status=404)
        return web.json_response({"prompt": template_text(payload.get("messages"))})


async def _before_answer(b: Behaviour) -> web.Response | None:
    """Delays, hangs and error answers shared by every generating endpoint."""
    if b.hang:
        await asyncio.Event().wait()
    if b.first_byte_delay:
        await asyncio.sleep(b.first_byte_delay)
    if b.redirect_to:
        return web.Response(status=307, headers={"Location": b.redirect_to})
    if b.status >= 400:
        return _error(b.status, b)
    return None


def _json_answer(body: Any, b: Behaviour) -> web.Response:
    """A successful JSON answer, under another Content-Type when told to."""
    if b.content_type is None:
        return web.json_response(body)
    return web.Response(
        body=json.dumps(body).encode(), headers={"Content-Type": b.content_type}
    )


def _error(status: int, b: Behaviour) -> web.Response:
    headers = {"Retry-After": b.retry_after} if b.retry_after else None
    if isinstance(b.error_body, str):
        return web.Response(status=status, text=b.error_body, headers=headers)
    body = b.error_body if b.error_body is not None else wire.error_body(status)
    return web.json_response(body, status=status, headers=headers)
