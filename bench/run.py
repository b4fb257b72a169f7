"""The proxy benchmark: the fake backend called directly and through Portico,
in the same run, with the ratios the API proxy issue sets as targets.

    .venv/bin/python bench/run.py            # full run, ~6 minutes
    .venv/bin/python bench/run.py --quick    # ~1.5 minutes
    .venv/bin/python bench/run.py --profile var/bench-profile   # + py-spy

Everything is on, as in production: PostgreSQL (BENCH_DATABASE_URL, default the
`bench` database, created and migrated here), Redis (BENCH_REDIS_URL, default
db 11), key authentication, the catalog cache, metering. One Portico worker
per server, pinned to core 1; the fake backend and the load generator share
core 0 (taskset, where it exists). docs/benchmarks.md explains the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import procs  # noqa: E402
from bench.procs import Measured, Server  # noqa: E402
from bench.report import as_jsonable, printed, profile_top, summarise  # noqa: E402
from bench.scenarios import MODES, Mode, scenarios  # noqa: E402


def database_ensure(url: str, *, fresh: bool = False) -> None:
    """Create the benchmark's PostgreSQL database if it does not exist (drop
    it first when `fresh`: a schema migrated by another branch breaks writes)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        if fresh:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )
        found = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if not found:
            connection.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            )


def child_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "REDIS_URL", "USAGE_METERING", "DEBUG")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        # Production settings: no query log, no debug pages.
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="warning",
        PYTHONUNBUFFERED="1",
        # Rate limits stay on (one Redis round trip per request, as in
        # production) but so high that the bench never meets them.
        DEFAULT_USER_RPM="1000000000",
        DEFAULT_USER_TPM="1000000000000",
    )
    return env


def prepare(env: dict[str, str], backend_port: int) -> str:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    done = subprocess.run(  # noqa: S603 (fixed argv, no shell)
        [
            sys.executable,
            "-m",
            "bench.prepare",
            "--backend-url",
            f"http://127.0.0.1:{backend_port}/v1",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["key"]


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(
            ["lscpu"],  # noqa: S607 (util-linux, wherever it is)
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = MODES[args.mode]
    files = procs.fd_limit_raise()
    widest = max(load.concurrency for load in scenarios(mode).values())
    if files < 3 * widest:
        say(f"open-file limit {files}: too low for {widest} streams (ulimit -n)")
    if "granian" in args.servers and not (procs.BIN / "granian").exists():
        say("granian is not installed (requirements-dev.txt): compared without it")
        args.servers = [name for name in args.servers if name != "granian"]
    database_ensure(args.database_url, fresh=args.fresh_db)
    env = child_env(args.database_url, args.redis_url)
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    load_before = load_average()
    backend, backend_port = procs.backend_start(sorted({0, mode.delay_ms}))
    servers: list[Server] = []
    metering: list[tuple[Measured, Measured]] = []
    try:
        key = prepare(env, backend_port)
        # All servers start now and idle while another is measured, so that
        # each scenario can alternate between them (same conditions for all).
        specs = [("uvicorn", "uvicorn", {})]
        if not args.no_meter_off:
            # Two fresh workers that serve nothing but the metering pairs, so
            # that they differ in metering only, not in what they served before.
            specs.append(("uvicorn-meter", "uvicorn", {}))
            specs.append(("uvicorn-nometer", "uvicorn", {"USAGE_METERING": "false"}))
        specs += [(name, name, {}) for name in args.servers if name != "uvicorn"]
        backend_url = {"BENCH_BACKEND_URL": f"http://127.0.0.1:{backend_port}"}
        specs = [
            (name, kind, {**extra, **backend_url} if kind == "floor" else extra)
            for name, kind, extra in specs
        ]
        for name, kind, extra in specs:
            servers.append(procs.server_launch(name, kind, {**env, **extra}, log_dir))
        procs.servers_ready(servers, key)
        say("serving: " + ", ".join(f"{s.name} on port {s.port}" for s in servers))
        measured: dict[str, dict[str, list[Measured]]] = {}
        for scenario, load in scenarios(mode).items():
            if args.only and scenario not in args.only:
                continue
            # Metering off has its own paired runs below.
            targets: list[Server | None] = [None]
            targets += [s for s in servers if not s.name.endswith(METERING_PAIR)]
            runs: dict[str, list[Measured]] = {}
            for round_index in range(mode.rounds):
                for server in targets:
                    profile_to = None
                    if args.profile and server is not None and round_index == 0:
                        profile_dir = Path(args.profile)
                        profile_dir.mkdir(parents=True, exist_ok=True)
                        profile_to = profile_dir / f"{scenario}-{server.name}.txt"
                    result = procs.measure(
                        load,
                        port=server.port if server else backend_port,
                        key=key if server else "sk-bench-direct",
                        backend=backend,
                        server=server,
                        profile_to=profile_to,
                    )
                    runs.setdefault(result.target, []).append(result)
                    say(f"{scenario:15} {result.target:16} {_brief(result)}")
            measured[scenario] = runs
        metering = metering_pairs(servers, mode, key, backend, args)
    finally:
        for server in servers:
            procs.stop(server.process)
        procs.stop(backend)
    # A server that logged errors (a failing meter flush, say) was measured
    # doing something else than serving: the output says so.
    logged_errors = {
        server.name: sum(
            " ERROR " in line or line.startswith("Traceback")
            for line in server.log.read_text(errors="replace").splitlines()
        )
        for server in servers
    }
    summaries = {
        scenario: {target: summarise(runs) for target, runs in by_target.items()}
        for scenario, by_target in measured.items()
    }
    return {
        "mode": args.mode,
        "machine": machine(),
        "pinned": procs.pinning_available(),
        "load_average": {"before": load_before, "after": load_average()},
        "seconds": round(time.monotonic() - started, 1),
        "servers": [server.name for server in servers],
        "logged_errors": logged_errors,
        "logs": {server.name: str(server.log) for server in servers},
        "summaries": summaries,
        "metering": [[asdict(on), asdict(off)] for on, off in metering],
        "runs": {
            scenario: {target: [asdict(r) for r in rs] for target, rs in by.items()}
            for scenario, by in measured.items()
        },
    }


METERING_PAIR = ("-meter", "-nometer")


def metering_pairs(
    servers: list[Server],
    mode: Mode,
    key: str,
    backend: subprocess.Popen[bytes],
    args: argparse.Namespace,
) -> list[tuple[Measured, Measured]]:
    """Metering on vs off, as pairs of back-to-back no-delay stream runs (the
    order alternating from pair to pair, never profiled): a pair shares the
    machine's conditions of the moment, which drift more between a round's
    first and last server than metering costs. Both workers start fresh and
    serve only these runs."""
    by_name = {server.name: server for server in servers}
    on, off = by_name.get("uvicorn-meter"), by_name.get("uvicorn-nometer")
    if on is None or off is None or (args.only and "stream_fast" not in args.only):
        return []
    load = scenarios(mode)["stream_fast"]
    pairs = []
    for index in range(mode.meter_pairs):
        results = {}
        for server in (on, off) if index % 2 == 0 else (off, on):
            result = procs.measure(
                load, port=server.port, key=key, backend=backend, server=server
            )
            results[server.name] = result
            say(f"metering pair {index + 1}: {server.name:16} {_brief(result)}")
        pairs.append((results[on.name], results[off.name]))
    return pairs


def _brief(result: Measured) -> str:
    load = result.load
    text = (
        f"{load['throughput']:9.1f}/s  ttft p50 {load['ttft_p50_ms']:7.2f} "
        f"p99 {load['ttft_p99_ms']:7.2f} ms  lat p50 {load['latency_p50_ms']:7.2f} ms"
        f"  loadgen {load['cpu_share']:.0%}"
    )
    if result.server_cpu_ms_per_request is not None:
        text += f"  server {result.server_cpu_ms_per_request:.3f} ms/req"
        text += (
            f"  core {procs.PORTICO_CORE}: portico {result.server_busy or 0:.0%}"
            f" of {result.portico_core_busy:.0%} busy"
        )
    if load["errors"]:
        text += f"  ERRORS {load['errors']} {load['statuses']}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", dest="mode", action="store_const", const="quick")
    group.add_argument("--smoke", dest="mode", action="store_const", const="smoke")
    parser.set_defaults(mode="full")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench"
        ),
    )
    parser.add_argument(
        "--fresh-db", action="store_true", help="drop and recreate the database first"
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
    )
    parser.add_argument(
        "--servers",
        default="uvicorn,granian,floor",
        type=lambda value: [name for name in value.split(",") if name],
        help="comma-separated: uvicorn, granian, floor (a bare relay: bench/floor.py)",
    )
    parser.add_argument(
        "--no-meter-off", action="store_true", help="skip the metering-off server"
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy each server's first run per scenario"
    )
    parser.add_argument(
        "--only",
        type=lambda value: [name for name in value.split(",") if name],
        help="run these scenarios only (comma-separated; prints raw lines, no table)",
    )
    parser.add_argument("--json", metavar="PATH", help="write every measurement here")
    parser.add_argument("--log-dir", default=str(ROOT / "var" / "bench"))
    args = parser.parse_args(argv)
    if "uvicorn" not in args.servers:
        parser.error("--servers must include uvicorn (the targets are read from it)")
    outcome = run(args)
    if not args.only:
        print(printed(outcome, MODES[args.mode]), flush=True)
    if args.profile:
        for path in sorted(Path(args.profile).glob("*.txt")):
            print("\n" + profile_top(path))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {**outcome, "summaries": as_jsonable(outcome["summaries"])}, indent=1
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
