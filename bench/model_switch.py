"""Model switching on Ollama: time to first token with and without
loaded-model-aware routing (apiproxy.routing, ROUTING_PREFER_LOADED).

Two fake Ollamas (tests/fakeollama.py), each holding one model at a time and
taking --load-seconds (2 s) to switch; two models, alpha and beta; --users
users (8), half on each model, each sending one streamed chat completion (32
tokens, 10 ms apart) after another with a think time of 0.5-1.5 s (seeded).
The same workload runs through a fresh Portico with the preference on and with
it off, alternating the order from round to round. Each run starts with fresh
fakes holding nothing, registered and discovered as an operator would, and
`manage.py checkbackends` every --check-interval seconds, as Celery beat would
(BACKEND_CHECK_INTERVAL_SECONDS is set to match). Requests started in the
first --warmup seconds are not counted. PostgreSQL and Redis as in bench/run.py.

    .venv/bin/python bench/model_switch.py           # 2 rounds of 40 s per mode
    .venv/bin/python bench/model_switch.py --smoke   # seconds: proves it runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import procs  # noqa: E402
from bench.run import child_env, database_ensure, machine  # noqa: E402

MODELS = ("alpha", "beta")
BACKENDS = ("ollama-a", "ollama-b")
_TOKEN = b'"content":" tok'  # the fake's tokens, relayed unchanged


@dataclass
class Sample:
    model: str
    started: float  # seconds since the run began
    ttft: float | None
    status: int


def fake_start(args: argparse.Namespace) -> tuple[subprocess.Popen[str], int]:
    command = [
        sys.executable,
        "-m",
        "tests.fakeollama",
        "--port",
        "0",
        "--models",
        ",".join(MODELS),
        "--capacity",
        "1",
        "--load-seconds",
        str(args.load_seconds),
        "--tokens",
        "32",
        "--token-delay",
        "0.01",
    ]
    process = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
        [*procs.pin(procs.CLIENT_CORE), *command],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if len(line) != 2 or line[0] != "READY":
        procs.stop(process)
        raise RuntimeError("the fake Ollama did not start")
    return process, int(line[1])


def prepare_main(urls: list[str]) -> None:
    """In a child process with Portico's environment: a `bench` key, and the
    fakes registered and discovered under fixed names (their ports change)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from accounts.models import User
    from accounts.services import apikey_create, user_create_for_keys
    from catalog.services import backend_add, backend_discover_models

    user = User.objects.filter(username="bench").first()
    if user is None:
        user = user_create_for_keys(username="bench")
    issued = apikey_create(user=user, name="bench-model-switch")
    for name, url in zip(BACKENDS, urls, strict=True):
        backend = backend_add(name=name, base_url=url, max_concurrency=8)
        result = backend_discover_models(backend=backend)
        if not result.ok:
            raise SystemExit(f"discovery of {name} failed: {result.error}")
    print(json.dumps({"key": issued.raw}))


def prepare(env: dict[str, str], ports: list[int]) -> str:
    urls = ",".join(f"http://127.0.0.1:{port}/v1" for port in ports)
    done = subprocess.run(  # noqa: S603 (fixed argv, no shell)
        [sys.executable, "-m", "bench.model_switch", "--prepare-backends", urls],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["key"]


def checks_run(env: dict[str, str], interval: float, stop: threading.Event) -> None:
    """The periodic health check, as Celery beat runs it."""
    while not stop.wait(interval):
        subprocess.run(
            [sys.executable, "manage.py", "checkbackends"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            check=False,
        )


async def user_loop(
    client: httpx.AsyncClient,
    model: str,
    *,
    begun: float,
    until: float,
    rng: random.Random,
    samples: list[Sample],
) -> None:
    await asyncio.sleep(rng.uniform(0, 1.0))  # users do not start in step
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say thirty-two words."}],
        "stream": True,
    }
    while time.monotonic() < until:
        started = time.monotonic()
        ttft = None
        async with client.stream("POST", "/v1/chat/completions", json=body) as answer:
            async for data in answer.aiter_bytes():
                if ttft is None and _TOKEN in data:
                    ttft = time.monotonic() - started
        samples.append(Sample(model, started - begun, ttft, answer.status_code))
        await asyncio.sleep(rng.uniform(0.5, 1.5))


async def users_run(port: int, key: str, args: argparse.Namespace) -> list[Sample]:
    samples: list[Sample] = []
    rng = random.Random(args.seed)  # noqa: S311 (think times, not secrets)
    begun = time.monotonic()
    until = begun + args.warmup + args.duration
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"authorization": f"Bearer {key}"},
        timeout=120,
        limits=httpx.Limits(max_connections=args.users),
    ) as client:
        await asyncio.gather(
            *(
                user_loop(
                    client,
                    MODELS[index % len(MODELS)],
                    begun=begun,
                    until=until,
                    rng=random.Random(rng.random()),  # noqa: S311 (as above)
                    samples=samples,
                )
                for index in range(args.users)
            )
        )
    return [s for s in samples if s.started >= args.warmup]


def fake_loads(port: int) -> int:
    return int(httpx.get(f"http://127.0.0.1:{port}/fake/stats").json()["loads"])


def run_once(
    env: dict[str, str], *, prefer: bool, args: argparse.Namespace, log_dir: Path
) -> dict[str, Any]:
    fakes = [fake_start(args) for _ in BACKENDS]
    ports = [port for _, port in fakes]
    server = None
    stop = threading.Event()
    checker = threading.Thread(
        target=checks_run, args=(env, args.check_interval, stop), daemon=True
    )
    try:
        key = prepare(env, ports)
        name = "prefer-loaded" if prefer else "least-in-flight"
        server_env = {**env, "ROUTING_PREFER_LOADED": "true" if prefer else "false"}
        server = procs.server_launch(name, "uvicorn", server_env, log_dir)
        procs.servers_ready([server], key)
        checker.start()
        samples = asyncio.run(users_run(server.port, key, args))
        loads = [fake_loads(port) for port in ports]
    finally:
        stop.set()
        if checker.is_alive():
            checker.join(timeout=30)
        if server is not None:
            procs.stop(server.process)
        for process, _ in fakes:
            procs.stop(process)
    return summarise(samples, loads=loads, prefer=prefer)


def summarise(
    samples: list[Sample], *, loads: list[int], prefer: bool
) -> dict[str, Any]:
    ttfts = sorted(s.ttft for s in samples if s.ttft is not None and s.status == 200)
    return {
        "prefer_loaded": prefer,
        "completed": len(ttfts),
        "errors": sum(1 for s in samples if s.status != 200 or s.ttft is None),
        "ttft_p50_ms": _percentile(ttfts, 0.50) * 1000,
        "ttft_p95_ms": _percentile(ttfts, 0.95) * 1000,
        "ttft_max_ms": (ttfts[-1] if ttfts else 0.0) * 1000,
        "loads": loads,
        "samples": [asdict(s) for s in samples],
    }


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(fraction * len(values)))]


def printed(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"Model switching: {args.users} users, 2 models, 2 Ollamas holding one "
        f"model each, switch {args.load_seconds} s, {args.duration:.0f} s measured "
        "per run",
        f"{'routing':16} {'requests':>8} {'TTFT p50':>10} {'TTFT p95':>10} "
        f"{'TTFT max':>10} {'loads':>6} {'errors':>6}",
    ]
    for run in runs:
        lines.append(
            f"{'prefer loaded' if run['prefer_loaded'] else 'least in flight':16} "
            f"{run['completed']:8d} {run['ttft_p50_ms']:8.0f}ms "
            f"{run['ttft_p95_ms']:8.0f}ms {run['ttft_max_ms']:8.0f}ms "
            f"{sum(run['loads']):6d} {run['errors']:6d}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.prepare_backends:
        prepare_main(args.prepare_backends.split(","))
        return 0
    database_ensure(args.database_url)
    env = child_env(args.database_url, args.redis_url)
    env["BACKEND_CHECK_INTERVAL_SECONDS"] = str(int(args.check_interval))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for round_index in range(args.rounds):
        order = (True, False) if round_index % 2 == 0 else (False, True)
        for prefer in order:
            run = run_once(env, prefer=prefer, args=args, log_dir=log_dir)
            print(printed([run], args).splitlines()[-1], file=sys.stderr, flush=True)
            runs.append(run)
    runs.sort(key=lambda run: not run["prefer_loaded"])
    print(printed(runs, args))
    print(f"Machine: {machine()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "runs": runs}))
    return 0


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds, 1 round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--load-seconds", type=float, default=2.0)
    parser.add_argument("--check-interval", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench"
        ),
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
    )
    parser.add_argument("--json", metavar="PATH", help="write every sample here")
    parser.add_argument("--log-dir", default=str(ROOT / "var" / "bench"))
    parser.add_argument("--prepare-backends", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.users, args.duration, args.warmup = 1, 4, 3.0, 0.0
        args.load_seconds, args.check_interval = 0.2, 5.0
    return args


if __name__ == "__main__":
    sys.exit(main())
