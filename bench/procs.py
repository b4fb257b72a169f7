"""The benchmark's processes: the fake backend, Portico under uvicorn or
granian, and one load generator run per measurement. Every child is pinned to
a core with taskset where it exists and stopped by its own pid."""

from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import core_busy, core_times, cpu_seconds, process_tree, rss_bytes

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Core 0: fake backend and load generator; core 1: Portico.
CLIENT_CORE, PORTICO_CORE = 0, 1


def pinning_available() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def fd_limit_raise() -> int:
    """Raise this process's soft limit on open files to the hard one, for the
    children to inherit: at 512 streams a server holds over 1,024 sockets (one
    to the client and one to the backend each), the common default soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if pinning_available() else []


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen[Any], *, timeout: float = 10.0) -> None:
    """SIGTERM (servers drain the meter on it), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def backend_start(delays: list[int]) -> tuple[subprocess.Popen[str], int]:
    command = [
        *pin(CLIENT_CORE),
        sys.executable,
        "-m",
        "bench.backend",
        "--port",
        "0",
        "--delays",
        ",".join(str(delay) for delay in delays),
    ]
    process = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
        command, cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if len(line) != 2 or line[0] != "READY":
        stop(process)
        raise RuntimeError("the fake backend did not start")
    return process, int(line[1])


@dataclass
class Server:
    """One Portico server process (its workers are its descendants)."""

    name: str  # uvicorn, uvicorn-nometer, granian
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def worker_rss(self) -> int:
        """RSS of the process that serves: the largest in the tree (granian's
        main process is a small supervisor; uvicorn serves from its own)."""
        return max((rss_bytes(pid) for pid in self.pids()), default=0)

    def worker_pid(self) -> int:
        return max(self.pids(), key=rss_bytes)


def server_command(kind: str, port: int) -> list[str]:
    if kind == "granian":
        return [
            str(BIN / "granian"),
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--runtime-threads",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "1",
            "--no-ws",
            "--log-level",
            "warning",
            "portal.asgi:application",
        ]
    # "floor" is bench/floor.py, a bare relay, under the same uvicorn.
    application = "bench.floor:app" if kind == "floor" else "portal.asgi:application"
    return [
        sys.executable,
        "-m",
        "uvicorn",
        application,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--lifespan",
        "on",
    ]


def server_launch(name: str, kind: str, env: dict[str, str], log_dir: Path) -> Server:
    """Start a server; `servers_ready` waits for it (start several, then wait)."""
    port = free_port()
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
            [*pin(PORTICO_CORE), *server_command(kind, port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Server(name=name, process=process, port=port, log=log)


def servers_ready(servers: list[Server], key: str, *, timeout: float = 90) -> None:
    """Wait until every server answers GET /v1/models with the bench key."""
    waiting = list(servers)
    deadline = time.monotonic() + timeout
    while waiting:
        for server in list(waiting):
            if server.process.poll() is not None:
                tail = server.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{server.name} exited; {server.log}:\n{tail}")
            if _models_ok(server.port, key):
                waiting.remove(server)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(server.name for server in waiting)
            raise RuntimeError(f"{names} did not answer within {timeout} s")
        time.sleep(0.2)


def _models_ok(port: int, key: str) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request(
            "GET", "/v1/models", headers={"authorization": f"Bearer {key}"}
        )
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


@dataclass
class Load:
    """What one load generator run asks for."""

    model: str
    stream: bool
    concurrency: int
    duration: float = 0.0
    warmup: float = 0.0
    ramp: float = 0.0
    requests: int | None = None
    warmup_requests: int = 0

    def argv(self) -> list[str]:
        argv = ["--model", self.model, "--concurrency", str(self.concurrency)]
        if self.stream:
            argv.append("--stream")
        if self.requests is None:
            argv += ["--duration", str(self.duration), "--warmup", str(self.warmup)]
            argv += ["--ramp", str(self.ramp)]
        else:
            argv += ["--requests", str(self.requests)]
            argv += ["--warmup-requests", str(self.warmup_requests)]
        return argv


@dataclass
class Measured:
    """A load generator's result, plus what the server spent on it."""

    target: str  # direct, or the server's name
    load: dict[str, Any]
    server_cpu_s: float | None = None
    server_cpu_ms_per_request: float | None = None
    server_rss_peak: int | None = None
    backend_cpu_s: float = 0.0
    wall_s: float = 0.0
    # Busy share of the client core and of Portico's core during the run, and
    # Portico's own share of its core: on a shared machine, the difference is
    # other tenants' load, which throughput and latency then also measure.
    client_core_busy: float = 0.0
    portico_core_busy: float = 0.0
    server_busy: float | None = None


def _rss_sampler(server: Server, peak: list[int], done: threading.Event) -> None:
    while not done.is_set():
        peak[0] = max(peak[0], server.worker_rss())
        done.wait(0.25)


def measure(
    load: Load,
    *,
    port: int,
    key: str,
    backend: subprocess.Popen[str],
    server: Server | None = None,
    profile_to: Path | None = None,
) -> Measured:
    """Run the load generator once (pinned to the client core) against `port`."""
    command = [
        *pin(CLIENT_CORE),
        sys.executable,
        "-m",
        "bench.loadgen",
        "--port",
        str(port),
        "--key",
        key,
        *load.argv(),
    ]
    backend_before = cpu_seconds([backend.pid])
    server_before = server.cpu() if server else 0.0
    peak, done = [0], threading.Event()
    sampler = spy = None
    if server is not None:
        sampler = threading.Thread(target=_rss_sampler, args=(server, peak, done))
        sampler.start()
        if profile_to is not None:
            spy = _py_spy_start(server, profile_to)
    cores_before, started = core_times(), time.monotonic()
    try:
        finished = subprocess.run(  # noqa: S603 (fixed argv, no shell)
            command, cwd=ROOT, capture_output=True, text=True, check=False
        )
    finally:
        wall = time.monotonic() - started
        busy = core_busy(cores_before, core_times())
        done.set()
        if sampler is not None:
            sampler.join()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
    if finished.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{finished.stderr[-2000:]}")
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    measured = Measured(
        target=server.name if server else "direct",
        load=result,
        backend_cpu_s=round(cpu_seconds([backend.pid]) - backend_before, 3),
        wall_s=round(wall, 3),
        client_core_busy=round(busy.get(CLIENT_CORE, 0.0), 3),
        portico_core_busy=round(busy.get(PORTICO_CORE, 0.0), 3),
    )
    if server is not None:
        spent = server.cpu() - server_before
        handled = sum(result["statuses"].values())
        measured.server_cpu_s = round(spent, 3)
        measured.server_cpu_ms_per_request = (
            round(spent / handled * 1000, 3) if handled else None
        )
        measured.server_rss_peak = peak[0]
        measured.server_busy = round(spent / wall, 3) if wall else None
    return measured


def _py_spy_start(server: Server, output: Path) -> subprocess.Popen[bytes]:
    """Sample the serving process's busy threads into a collapsed-stack file."""
    spy = BIN / "py-spy"
    if not spy.exists():
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    return subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
        [
            *pin(CLIENT_CORE),
            str(spy),
            "record",
            "--pid",
            str(server.worker_pid()),
            "--rate",
            "250",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
