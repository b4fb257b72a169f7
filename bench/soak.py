"""The soak: a mixed load for N minutes against two Portico workers with
Celery running, with a backend death, a Redis restart and a PostgreSQL
restart in the middle, and the books checked at the end.

    .venv/bin/python bench/soak.py --minutes 60 --json var/soak.json \\
        --plot docs/figures/soak.png
    .venv/bin/python bench/soak.py --smoke       # ~1 minute, for the tests

Everything runs on this machine as in production, except that PostgreSQL and
Redis are the soak's own (bench/soakservices.py), so that restarting them
touches nothing else. Two uvicorn workers (each its own process and port; the
load alternates between them), a Celery worker and beat (the rollup, the
pruning, the backend checks), and the fake backend of bench/soakbackend.py.
The load (bench/soakload.py) mixes paced and fast streams, non-streamed
requests, embeddings, streams the backend cuts and streams the client
leaves. At a quarter of the run the backend is killed (down 10 s), at 45 %
Redis restarts (down 5 s), at 65 % PostgreSQL (down 10 s).

Every minute: RSS per process, each worker's connections by peer, Redis's
clients and held slots, each worker's event-loop lag p99 and usage buffer.
At the end, once the load has stopped and the meters drained: one usage
record per answer that must have one, matched by request id; no slot held,
no client connection left, RSS growth after the warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench import procs, soakwatch  # noqa: E402
from bench.common import loop_run  # noqa: E402
from bench.procs import Server, free_port, stop  # noqa: E402
from bench.run import child_env, load_average, machine, prepare, say  # noqa: E402
from bench.soakload import SMOKE_MIX, Mix, SoakLoad  # noqa: E402
from bench.soakreport import books_check, plot, printed, rss_growth  # noqa: E402
from bench.soakservices import PrivatePostgres, PrivateRedis  # noqa: E402

# (share of the run, what happens, seconds down)
EVENTS = ((0.25, "backend", 10.0), (0.45, "redis", 5.0), (0.65, "postgres", 10.0))
SMOKE_OUTAGE = 2.0


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.minutes: float = args.minutes
        self.smoke: bool = args.smoke
        self.postgres = PrivatePostgres()
        self.redis = PrivateRedis()
        self.data_dir = Path(tempfile.mkdtemp(prefix="portico-soak-data-"))
        self.log_dir = Path(args.log_dir)
        self.backend_port = free_port()
        self.backend: subprocess.Popen[str] | None = None
        self.workers: list[Server] = []
        self.celery: dict[str, subprocess.Popen[bytes]] = {}
        self.samples: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.env: dict[str, str] = {}

    # Processes ----------------------------------------------------------

    def backend_start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / "soak-backend.log").open("ab") as log:
            self.backend = subprocess.Popen(  # noqa: S603 (fixed argv)
                [
                    sys.executable,
                    "-m",
                    "bench.soakbackend",
                    "--port",
                    str(self.backend_port),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self.backend.stdout is not None
        if not self.backend.stdout.readline().startswith("READY"):
            raise RuntimeError("the soak backend did not start")

    def backend_kill(self) -> None:
        """A crash, not a shutdown: streams in flight are cut."""
        if self.backend is not None:
            self.backend.kill()
            self.backend.wait()

    def start(self) -> str:
        self.postgres.start()
        self.redis.start()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **child_env(self.postgres.url, self.redis.url),
            "DATA_DIR": str(self.data_dir),
            "WEB_PROCESSES": "2",
            "BACKEND_CHECK_INTERVAL_SECONDS": "10",
            "USAGE_ROLLUP_INTERVAL_SECONDS": "30",
        }
        self.backend_start()
        key = prepare(self.env, self.backend_port)
        for index in range(2):
            port = free_port()
            log = self.log_dir / f"soak-worker-{index + 1}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(  # noqa: S603 (fixed argv)
                    procs.server_command("uvicorn", port),
                    cwd=ROOT,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            self.workers.append(Server(f"worker-{index + 1}", process, port, log))
        celery = [sys.executable, "-m", "celery", "-A", "portal"]
        beat_file = str(self.data_dir / "celerybeat-schedule")
        for name, argv in (
            (
                "celery-worker",
                [*celery, "worker", "--concurrency", "1", "-l", "WARNING"],
            ),
            ("celery-beat", [*celery, "beat", "-s", beat_file, "-l", "WARNING"]),
        ):
            with (self.log_dir / f"soak-{name}.log").open("wb") as out:
                self.celery[name] = subprocess.Popen(  # noqa: S603 (fixed argv)
                    argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
                )
        procs.servers_ready(self.workers, key)
        return key

    def close(self) -> None:
        for worker in self.workers:
            stop(worker.process, timeout=40)
        for process in self.celery.values():
            stop(process)
        if self.backend is not None:
            stop(self.backend)
        self.redis.close()
        self.postgres.close()

    # Events ---------------------------------------------------------------

    def event_run(self, what: str, outage: float) -> None:
        if what == "backend":
            self.backend_kill()
            time.sleep(outage)
            self.backend_start()
        elif what == "redis":
            self.redis.restart(outage=outage)
        elif what == "postgres":
            self.postgres.restart(outage=outage)

    # Sampling ---------------------------------------------------------------

    async def sample(
        self, session: aiohttp.ClientSession, load: SoakLoad, started: float
    ) -> dict[str, Any]:
        ports = soakwatch.Ports(self.backend_port, self.postgres.port, self.redis.port)
        workers = {}
        for worker in self.workers:
            workers[worker.name] = {
                "rss_mb": soakwatch.rss_mb(worker.process.pid),
                "connections": dict(
                    soakwatch.connections(
                        worker.process.pid, listen_port=worker.port, ports=ports
                    )
                ),
                **await soakwatch.gauges(session, worker.port),
            }
        redis_state = await asyncio.to_thread(soakwatch.redis_state, self.redis.url)
        sample = {
            "minute": round((time.monotonic() - started) / 60, 2),
            "workers": workers,
            "celery_rss_mb": {
                name: soakwatch.rss_mb(process.pid)
                for name, process in self.celery.items()
            },
            "redis": redis_state,
            "requests": dict(load.tally.minute_take()),
            "load_average": load_average(),
        }
        self.samples.append(sample)
        say(printed_sample(sample))
        return sample

    async def drained(self, session: aiohttp.ClientSession, *, within: float) -> bool:
        """Every worker's buffer empty, and nothing left in the spool."""
        deadline = time.monotonic() + within
        spool = self.data_dir / "usage-spool"
        while time.monotonic() < deadline:
            depths = [
                (await soakwatch.gauges(session, w.port)).get(
                    "portico_usage_buffer_records"
                )
                for w in self.workers
            ]
            spooled = (
                [p for p in spool.glob("*") if p.is_file()] if spool.exists() else []
            )
            if all(depth == 0 for depth in depths) and not spooled:
                return True
            await asyncio.sleep(1.0)
        return False

    async def run(self, key: str) -> dict[str, Any]:
        mix = SMOKE_MIX if self.smoke else Mix()
        load = SoakLoad(ports=[w.port for w in self.workers], key=key, mix=mix)
        total = self.minutes * 60
        every = 10.0 if self.smoke else 60.0
        pending = list(EVENTS)
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            started = time.monotonic()
            await load.start()
            next_sample = started + every
            event_task: asyncio.Task[None] | None = None
            while time.monotonic() - started < total:
                elapsed = time.monotonic() - started
                if pending and elapsed >= pending[0][0] * total and event_task is None:
                    _, what, outage = pending.pop(0)
                    outage = SMOKE_OUTAGE if self.smoke else outage
                    self.events.append({"minute": round(elapsed / 60, 2), "what": what})
                    say(f"--- {what} goes down for {outage:.0f} s")
                    event_task = asyncio.ensure_future(
                        asyncio.to_thread(self.event_run, what, outage)
                    )
                if event_task is not None and event_task.done():
                    event_task.result()
                    event_task = None
                if time.monotonic() >= next_sample:
                    await self.sample(session, load, started)
                    next_sample += every
                await asyncio.sleep(0.25)
            if event_task is not None:
                await event_task
            say("--- load stops; waiting for the answers in flight and the meters")
            await load.stop()
            drained = await self.drained(session, within=180)
            # Slots released in batches settle within milliseconds; idle
            # keep-alive connections to the backend close once aiohttp's
            # sweep (every 15 s) finds them idle for 15 s, so within 30 s:
            # after that nothing of the load may be left open.
            await asyncio.sleep(35)
            final = await self.sample(session, load, started)
        return {
            "load": load,
            "drained": drained,
            "final": final,
        }


def printed_sample(sample: dict[str, Any]) -> str:
    parts = [f"min {sample['minute']:6.2f}"]
    for name, worker in sample["workers"].items():
        lag = worker.get("portico_event_loop_lag_p99_seconds")
        lag_text = f"{lag * 1000:.1f}" if lag is not None else "?"
        connections = worker["connections"]
        parts.append(
            f"{name} {worker['rss_mb']:.1f} MB conn c{connections.get('clients', 0)}"
            f"/b{connections.get('backend', 0)}/p{connections.get('postgres', 0)}"
            f"/r{connections.get('redis', 0)} lag99 {lag_text} ms"
            f" buf {worker.get('portico_usage_buffer_records', '?')}"
        )
    redis_state = sample["redis"]
    parts.append(
        f"redis clients {redis_state['clients']} slots {redis_state['slots_held']}"
    )
    parts.append(f"req {sum(sample['requests'].values())}")
    return " | ".join(parts)


def warmup_minutes(minutes: float) -> float:
    return min(10.0, minutes / 3)


def report_again(path: Path, *, plot_to: str | None) -> int:
    """The verdicts of an earlier run, recomputed from its figures."""
    summary = json.loads(path.read_text())
    summary["rss_growth"] = rss_growth(
        summary["samples"],
        warmup_minutes=warmup_minutes(summary["minutes"]),
        events=summary["events"],
    )
    print(printed(summary), flush=True)
    if plot_to:
        plot(summary, Path(plot_to))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=None, help="default 10 (1 with --smoke)"
    )
    parser.add_argument("--smoke", action="store_true", help="a small mix, 1 minute")
    parser.add_argument("--json", metavar="PATH", help="write every figure here")
    parser.add_argument("--plot", metavar="PNG", help="draw the minutes here")
    parser.add_argument("--log-dir", default=str(ROOT / "var" / "soak"))
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="no run: print the summary (and --plot) of an earlier run's --json",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        return report_again(Path(args.from_json), plot_to=args.plot)
    if args.minutes is None:
        args.minutes = 1.0 if args.smoke else 10.0
    soak = Soak(args)
    say(f"soak: {args.minutes} min, {machine()}, load average {load_average()}")
    try:
        key = soak.start()
        outcome = loop_run(soak.run(key))
        books = books_check(soak.postgres.url, outcome["load"].tally)
    finally:
        soak.close()
    summary = {
        "minutes": args.minutes,
        "machine": machine(),
        "events": soak.events,
        "drained": outcome["drained"],
        "books": books,
        "outcomes": dict(outcome["load"].total),
        "rss_growth": rss_growth(
            soak.samples,
            warmup_minutes=warmup_minutes(args.minutes),
            events=soak.events,
        ),
        "final": outcome["final"],
        "samples": soak.samples,
    }
    print(printed(summary), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=1))
    if args.plot:
        plot(summary, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
