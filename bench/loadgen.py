"""The benchmark's load generator: N keep-alive connections on bare asyncio
protocols (uvloop), each sending one chat completion after another.

A hand-written HTTP/1.1 client rather than aiohttp, because the generator must
not be the bottleneck: it parses only the status line, the framing and the
bytes it needs (a token marker and `[DONE]`). It reports its own CPU use so
that run.py can say when it came near to saturating its core.

Two ways to bound a run:
- `--duration T [--warmup W]`: requests completing in the T seconds after a
  W-second warm-up count (connections start spread over `--ramp` seconds);
- `--requests M [--warmup-requests K]`: exactly M measured requests after K
  unmeasured ones (with `--concurrency 1`: sequential, for latency).

Prints one JSON object (see `Result`).

    python -m bench.loadgen --port 8000 --key sk-... --model bench-20ms \\
        --stream --concurrency 256 --duration 10 --warmup 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import asdict, dataclass, field

from bench.common import loop_run

_TOKEN = b'"content":" tok"'  # the fake backend's token, as relayed unchanged
_DONE = b"data: [DONE]"


def request_bytes(
    *, host: str, port: int, key: str, model: str, stream: bool, path: str
) -> bytes:
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "Say sixty-four words."}],
            "max_tokens": 64,
            "stream": stream,
        },
        separators=(",", ":"),
    ).encode()
    return (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\n"
        f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


class Exchange:
    """The answer to one request, filled in as bytes arrive."""

    __slots__ = (
        "done",
        "done_marker",
        "finished",
        "started",
        "status",
        "tokens",
        "ttft",
    )

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.started = time.perf_counter()
        self.ttft: float | None = None
        self.finished = 0.0
        self.status = 0
        self.tokens = 0
        self.done_marker = False
        self.done = done


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.buffer = bytearray()
        self.head_done = False
        self.chunked = False
        self.remaining = 0  # content-length mode: body bytes still to come

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.exchange is not None and not self.exchange.done.done():
            self.exchange.done.set_exception(ConnectionError("connection lost"))

    def request(self, payload: bytes) -> Exchange:
        assert self.transport is not None
        exchange = Exchange(asyncio.get_running_loop().create_future())
        self.exchange = exchange
        self.buffer.clear()
        self.head_done = self.chunked = False
        self.transport.write(payload)
        return exchange

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        tokens = data.count(_TOKEN)
        if tokens:
            if exchange.ttft is None:
                exchange.ttft = time.perf_counter() - exchange.started
            exchange.tokens += tokens
        if not exchange.done_marker and _DONE in data:
            exchange.done_marker = True
        self.buffer += data
        if not self.head_done:
            end = self.buffer.find(b"\r\n\r\n")
            if end == -1:
                return
            head = bytes(self.buffer[:end]).lower()
            exchange.status = int(head[9:12])
            del self.buffer[: end + 4]
            self.head_done = True
            self.chunked = b"transfer-encoding: chunked" in head
            if not self.chunked:
                marker = head.find(b"content-length:")
                line_end = head.find(b"\r\n", marker)
                self.remaining = int(
                    head[marker + 15 : line_end if line_end != -1 else None]
                )
        if self.chunked:
            self._chunks()
        elif len(self.buffer) >= self.remaining:
            if exchange.ttft is None:
                exchange.ttft = time.perf_counter() - exchange.started
            self._finish()

    def _chunks(self) -> None:
        buffer = self.buffer
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end == -1:
                return
            size = int(bytes(buffer[:line_end]).split(b";")[0], 16)
            if size == 0:
                if len(buffer) < line_end + 4:
                    return
                self._finish()
                return
            if len(buffer) < line_end + 2 + size + 2:
                return
            del buffer[: line_end + 2 + size + 2]

    def _finish(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        exchange.finished = time.perf_counter()
        self.exchange = None
        self.buffer.clear()
        exchange.done.set_result(None)


@dataclass
class Result:
    completed: int = 0
    errors: int = 0
    window_s: float = 0.0  # the measured window
    throughput: float = 0.0  # completed per second in the window
    ttft_p50_ms: float = 0.0
    ttft_p99_ms: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    tokens_mean: float = 0.0  # per completed stream (64 expected)
    cpu_s: float = 0.0  # this generator's own CPU in the window
    cpu_share: float = 0.0  # of one core
    statuses: dict[str, int] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.payload = request_bytes(
            host=args.host,
            port=args.port,
            key=args.key,
            model=args.model,
            stream=args.stream,
            path=args.path,
        )
        self.ttfts: list[float] = []
        self.latencies: list[float] = []
        self.tokens = 0
        self.errors = 0
        self.statuses: dict[str, int] = {}
        self.window_start = 0.0
        self.window_end = float("inf")
        self.stop = False
        self.budget = 0  # requests left to start, in --requests mode
        self.warmup_left = 0

    def record(self, exchange: Exchange) -> None:
        status = str(exchange.status)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        valid = exchange.status == 200 and (
            not self.args.stream or exchange.done_marker
        )
        if not valid:
            self.errors += 1
            return
        if not self.window_start <= exchange.finished <= self.window_end:
            return
        self.latencies.append(exchange.finished - exchange.started)
        if exchange.ttft is not None:
            self.ttfts.append(exchange.ttft)
        self.tokens += exchange.tokens

    def take(self) -> tuple[bool, bool]:
        """(may start another request, is it measured)."""
        if self.stop:
            return False, False
        if self.args.requests is None:
            return True, True
        if self.warmup_left > 0:
            self.warmup_left -= 1
            return True, False
        if self.budget > 0:
            self.budget -= 1
            return True, True
        return False, False

    async def connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            Connection, self.args.host, self.args.port
        )
        return protocol

    async def worker(self, delay: float) -> None:
        await asyncio.sleep(delay)
        connection: Connection | None = None
        while True:
            go, measured = self.take()
            if not go:
                break
            try:
                if connection is None or connection.transport is None:
                    connection = await self.connect()
                exchange = connection.request(self.payload)
                await exchange.done
            except (ConnectionError, OSError):
                self.errors += 1
                connection = None
                await asyncio.sleep(0.05)
                continue
            if measured:
                self.record(exchange)
        if connection is not None and connection.transport is not None:
            connection.transport.close()

    async def main(self) -> Result:
        args = self.args
        n = args.concurrency
        started = time.perf_counter()
        if args.requests is None:
            self.window_start = started + args.warmup
            self.window_end = self.window_start + args.duration
        else:
            self.window_start, self.budget = started, args.requests
            self.warmup_left = args.warmup_requests
        ramp = args.ramp if args.requests is None else 0.0
        workers = [asyncio.ensure_future(self.worker(ramp * i / n)) for i in range(n)]
        cpu_before = window_cpu_start = _own_cpu()
        if args.requests is None:
            await asyncio.sleep(args.warmup)
            window_cpu_start = _own_cpu()
            await asyncio.sleep(args.duration)
            window_cpu_end = _own_cpu()
            self.stop = True
            # Let answers in flight finish (they are not counted), so the next
            # scenario does not start amid a storm of disconnects.
            _, pending = await asyncio.wait(workers, timeout=args.drain)
            for task in pending:
                task.cancel()
            window = args.duration
        else:
            await asyncio.gather(*workers)
            window_cpu_end = _own_cpu()
            window_cpu_start = cpu_before
            window = time.perf_counter() - started
        cpu = window_cpu_end - window_cpu_start
        completed = len(self.latencies)
        return Result(
            completed=completed,
            errors=self.errors,
            window_s=round(window, 3),
            throughput=round(completed / window, 2) if window else 0.0,
            ttft_p50_ms=round(percentile(self.ttfts, 0.50) * 1000, 3),
            ttft_p99_ms=round(percentile(self.ttfts, 0.99) * 1000, 3),
            latency_p50_ms=round(percentile(self.latencies, 0.50) * 1000, 3),
            latency_p99_ms=round(percentile(self.latencies, 0.99) * 1000, 3),
            tokens_mean=round(self.tokens / completed, 2) if completed else 0.0,
            cpu_s=round(cpu, 3),
            cpu_share=round(cpu / window, 3) if window else 0.0,
            statuses=self.statuses,
        )


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("--key", default="sk-bench-direct")
    parser.add_argument("--model", default="bench-0ms")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--ramp", type=float, default=0.0)
    parser.add_argument("--drain", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--warmup-requests", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = loop_run(Run(args).main())
    print(json.dumps(asdict(result)), flush=True)


if __name__ == "__main__":
    main()
