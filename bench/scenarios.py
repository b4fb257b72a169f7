"""What the benchmark runs: the modes (full, quick, smoke) and, for each, the
load of every scenario."""

from __future__ import annotations

from dataclasses import dataclass

from bench.procs import Load


@dataclass(frozen=True)
class Mode:
    rounds: int  # each scenario runs direct, then through each server, this often
    delay_ms: int  # between tokens in the slow-stream scenario
    slow_streams: int
    # The same paced streams, twice as many: the second scale point.
    slow_streams_wide: int
    fast_streams: int
    json_concurrency: int
    duration: float  # measured seconds per run
    warmup: float
    latency_requests: int
    latency_warmup: int
    # Metering on vs off: this many back-to-back pairs of no-delay stream runs,
    # the order alternating, compared pair by pair (see bench/run.py).
    meter_pairs: int = 1
    # Set: every scenario is this many requests instead of a timed window.
    requests: int | None = None


MODES = {
    "full": Mode(2, 20, 256, 512, 64, 64, 10.0, 2.0, 2000, 100, meter_pairs=6),
    "quick": Mode(1, 20, 256, 512, 64, 64, 4.0, 1.0, 300, 30, meter_pairs=3),
    # For the test suite: proves the harness runs end to end, measures nothing.
    "smoke": Mode(1, 2, 4, 8, 4, 4, 0.0, 0.0, 4, 1, requests=8),
}


# The paced scenarios' names (256 and 512 streams in full and quick modes;
# smoke shrinks both, as it shrinks everything).
SLOW = "stream_slow"
SLOW_WIDE = "stream_slow_512"


def scenarios(mode: Mode) -> dict[str, Load]:
    stream_seconds = 64 * mode.delay_ms / 1000
    slow_model = f"bench-{mode.delay_ms}ms"
    if mode.requests is not None:
        return {
            name: Load(
                model=model,
                stream=stream,
                concurrency=concurrency,
                requests=mode.requests,
                warmup_requests=1,
            )
            for name, model, stream, concurrency in (
                (SLOW, slow_model, True, mode.slow_streams),
                (SLOW_WIDE, slow_model, True, mode.slow_streams_wide),
                ("stream_fast", "bench-0ms", True, mode.fast_streams),
                ("json", "bench-0ms", False, mode.json_concurrency),
                ("latency", "bench-0ms", False, 1),
                ("latency_stream", "bench-0ms", True, 1),
            )
        }
    return {
        # Connections start spread over one answer's length, so that the
        # streams are not in lock-step; the warm-up covers that ramp.
        SLOW: Load(
            model=slow_model,
            stream=True,
            concurrency=mode.slow_streams,
            duration=mode.duration,
            warmup=max(mode.warmup, stream_seconds + 0.5),
            ramp=stream_seconds,
        ),
        SLOW_WIDE: Load(
            model=slow_model,
            stream=True,
            concurrency=mode.slow_streams_wide,
            duration=mode.duration,
            warmup=max(mode.warmup, stream_seconds + 0.5),
            ramp=stream_seconds,
        ),
        "stream_fast": Load(
            model="bench-0ms",
            stream=True,
            concurrency=mode.fast_streams,
            duration=mode.duration,
            warmup=mode.warmup,
        ),
        "json": Load(
            model="bench-0ms",
            stream=False,
            concurrency=mode.json_concurrency,
            duration=mode.duration,
            warmup=mode.warmup,
        ),
        "latency": Load(
            model="bench-0ms",
            stream=False,
            concurrency=1,
            requests=mode.latency_requests,
            warmup_requests=mode.latency_warmup,
        ),
        "latency_stream": Load(
            model="bench-0ms",
            stream=True,
            concurrency=1,
            requests=mode.latency_requests,
            warmup_requests=mode.latency_warmup,
        ),
    }
