"""The soak's mixed load: clients of every kind at once, against two Portico
workers, each request's fate written down.

Every answer Portico gives carries `x-request-id`; the load keeps the ids of
the answers that must have a usage record (every answer to a known key:
served, refused, broken off by the backend or by the client), so that the
soak can compare them with the usage table one by one at the end. Answers
refused before the key was known (503 `auth_unavailable` while PostgreSQL is
down and the key is not cached) are counted apart: Portico meters no one for
them.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

UNMETERED_CODES = {"auth_unavailable", "invalid_api_key"}


@dataclass(frozen=True)
class Mix:
    """How many clients of each kind run at once (split over the workers),
    and the pause each takes between requests (paced ones take none)."""

    paced: int = 48  # 64 tokens, 20 ms apart: the realistic stream
    fast: int = 4  # 64 tokens at once, 0.1 s pause
    json: int = 4  # non-streamed, 0.05 s pause
    embeddings: int = 2  # 0.1 s pause
    dying: int = 2  # the backend cuts the stream after 16 tokens; 0.5 s pause
    leaving: int = 3  # a paced stream the client leaves after 1 to 30 tokens


SMOKE_MIX = Mix(paced=3, fast=1, json=1, embeddings=1, dying=1, leaving=1)


@dataclass
class Tally:
    metered_ids: set[str] = field(default_factory=set)
    outcomes: Counter[str] = field(default_factory=Counter)
    unmetered: int = 0
    # Requests whose answer never began (connection refused or cut before
    # the status line): Portico may or may not have seen them.
    unanswered: int = 0
    requests: int = 0

    def minute_take(self) -> Counter[str]:
        taken, self.outcomes = self.outcomes, Counter()
        return taken


class SoakLoad:
    def __init__(self, *, ports: list[int], key: str, mix: Mix) -> None:
        self.ports = ports
        self.key = key
        self.mix = mix
        self.tally = Tally()
        self.total: Counter[str] = Counter()
        self.stopping = False
        self.sessions: list[aiohttp.ClientSession] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=120, sock_connect=5)
        self.sessions = [
            aiohttp.ClientSession(
                base_url=f"http://127.0.0.1:{port}",
                timeout=timeout,
                headers={"authorization": f"Bearer {self.key}"},
                connector=aiohttp.TCPConnector(limit=0, force_close=False),
            )
            for port in self.ports
        ]
        kinds = [
            (self._paced, self.mix.paced),
            (self._fast, self.mix.fast),
            (self._json, self.mix.json),
            (self._embeddings, self.mix.embeddings),
            (self._dying, self.mix.dying),
            (self._leaving, self.mix.leaving),
        ]
        for client, count in kinds:
            for index in range(count):
                session = self.sessions[index % len(self.sessions)]
                # Spread over a paced answer's length: not in lock-step.
                delay = random.uniform(0, 1.3)  # noqa: S311 (not security)
                self.tasks.append(asyncio.ensure_future(client(session, delay)))

    async def stop(self, *, within: float = 60.0) -> None:
        """Let every client finish the request it is in, then close."""
        self.stopping = True
        if self.tasks:
            _, late = await asyncio.wait(self.tasks, timeout=within)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for session in self.sessions:
            await session.close()

    def _count(self, outcome: str) -> None:
        self.tally.outcomes[outcome] += 1
        self.total[outcome] += 1

    async def _loop(self, delay: float, pause: float, one) -> None:  # type: ignore[no-untyped-def]
        await asyncio.sleep(delay)
        while not self.stopping:
            self.tally.requests += 1
            try:
                outcome = await one()
            except (TimeoutError, aiohttp.ClientError, OSError):
                outcome = "no answer"
                self.tally.unanswered += 1
                await asyncio.sleep(0.2)
            self._count(outcome)
            if not outcome.startswith("200") and outcome != "left mid-stream":
                # As the SDKs do: a refused or failed request is retried
                # after a pause, not at once.
                await asyncio.sleep(max(pause, 0.5))
            elif pause:
                await asyncio.sleep(pause)

    def _answered(self, response: aiohttp.ClientResponse) -> None:
        request_id = response.headers.get("x-request-id")
        if request_id:
            self.tally.metered_ids.add(request_id)

    async def _refusal(self, response: aiohttp.ClientResponse) -> str:
        """A non-200 answer: metered unless the key was never checked."""
        try:
            code = (await response.json(content_type=None))["error"]["code"]
        except (ValueError, KeyError, TypeError, aiohttp.ClientError):
            code = ""
        if code in UNMETERED_CODES:
            self.tally.unmetered += 1
        else:
            self._answered(response)
        return f"{response.status} {code}".strip()

    async def _stream(
        self, session: aiohttp.ClientSession, model: str, *, leave_after: int = 0
    ) -> str:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "Say sixty-four words."}],
            "max_tokens": 64,
            "stream": True,
        }
        async with session.post("/v1/chat/completions", json=body) as response:
            if response.status != 200:
                return await self._refusal(response)
            self._answered(response)
            tokens = 0
            try:
                async for line in response.content:
                    if line.startswith(b"data: [DONE]"):
                        return "200 stream"
                    if line.startswith(b"data: {") and b'"error"' in line[:20]:
                        error = json.loads(line[6:]).get("error") or {}
                        return f"200 stream error {error.get('code') or ''}".strip()
                    if b'"content":" tok"' in line:
                        tokens += 1
                        if leave_after and tokens >= leave_after:
                            response.close()  # the client goes away mid-answer
                            return "left mid-stream"
            except (TimeoutError, aiohttp.ClientError):
                pass
            return "200 stream cut"

    async def _paced(self, session: aiohttp.ClientSession, delay: float) -> None:
        await self._loop(delay, 0.0, lambda: self._stream(session, "soak-paced"))

    async def _fast(self, session: aiohttp.ClientSession, delay: float) -> None:
        await self._loop(delay, 0.1, lambda: self._stream(session, "soak-fast"))

    async def _dying(self, session: aiohttp.ClientSession, delay: float) -> None:
        await self._loop(delay, 0.5, lambda: self._stream(session, "soak-dies"))

    async def _leaving(self, session: aiohttp.ClientSession, delay: float) -> None:
        async def one() -> str:
            after = random.randint(1, 30)  # noqa: S311 (not security)
            return await self._stream(session, "soak-paced", leave_after=after)

        await self._loop(delay, 0.2, one)

    async def _json(self, session: aiohttp.ClientSession, delay: float) -> None:
        async def one() -> str:
            body = {
                "model": "soak-fast",
                "messages": [{"role": "user", "content": "Hello"}],
                "max_tokens": 64,
            }
            async with session.post("/v1/chat/completions", json=body) as response:
                if response.status != 200:
                    return await self._refusal(response)
                self._answered(response)
                await response.read()
                return "200 json"

        await self._loop(delay, 0.05, one)

    async def _embeddings(self, session: aiohttp.ClientSession, delay: float) -> None:
        async def one() -> str:
            body = {"model": "soak-embed", "input": ["one text", "another"]}
            async with session.post("/v1/embeddings", json=body) as response:
                if response.status != 200:
                    return await self._refusal(response)
                self._answered(response)
                await response.read()
                return "200 embeddings"

        await self._loop(delay, 0.1, one)
