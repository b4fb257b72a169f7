"""What the soak reads off the running system each minute: each process's
memory, each worker's TCP connections by peer, its /metrics gauges, and
Redis's own view (clients connected, concurrency slots held).

Connections are read from /proc: a process's socket inodes (its fds) matched
with /proc/net/tcp{,6}, whose lines give each socket's ports and state, so a
connection is counted by what is at its other end (clients, the backend,
PostgreSQL, Redis) without asking the process anything.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.common import rss_bytes

ESTABLISHED = "01"
_GAUGE = re.compile(rb"^(portico_[a-z0-9_]+)(?:\{[^}]*\})? ([0-9.eE+-]+)$", re.M)
GAUGES = (
    "portico_usage_buffer_records",
    "portico_usage_records_spooled_total",
    "portico_usage_flush_failures_total",
    "portico_event_loop_lag_p99_seconds",
    "portico_event_loop_lag_max_seconds",
    "portico_slot_leases_held",
)


@dataclass(frozen=True)
class Ports:
    backend: int
    postgres: int
    redis: int


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _tcp_table() -> dict[str, tuple[int, int, str]]:
    """inode -> (local port, remote port, state) for every TCP socket."""
    table = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            table[inode] = (
                int(local.rsplit(":", 1)[1], 16),
                int(remote.rsplit(":", 1)[1], 16),
                state,
            )
    return table


def connections(pid: int, *, listen_port: int, ports: Ports) -> Counter[str]:
    """Established TCP connections of `pid`, by the peer at the other end."""
    table = _tcp_table()
    peers: Counter[str] = Counter()
    for inode in _socket_inodes(pid):
        entry = table.get(inode)
        if entry is None or entry[2] != ESTABLISHED:
            continue
        local, remote, _ = entry
        if local == listen_port:
            peers["clients"] += 1
        elif remote == ports.backend:
            peers["backend"] += 1
        elif remote == ports.postgres:
            peers["postgres"] += 1
        elif remote == ports.redis:
            peers["redis"] += 1
        else:
            peers["other"] += 1
    return peers


async def gauges(session: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """The worker's own gauges from /metrics (loopback may scrape)."""
    try:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.read()
    except (aiohttp.ClientError, OSError, TimeoutError):
        return {}
    found: dict[str, float] = {}
    for name, value in _GAUGE.findall(text):
        key = name.decode()
        if key in GAUGES:
            found[key] = found.get(key, 0.0) + float(value)
    return found


def redis_state(url: str) -> dict[str, int | None]:
    """Clients connected, and concurrency-slot leases not yet expired."""
    import time

    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        clients = int(client.info("clients")["connected_clients"])
        now_ms = int(time.time() * 1000)
        held = 0
        for key in client.scan_iter(match="portico:slots:*", count=1000):
            held += int(client.zcount(key, now_ms, "+inf"))
        client.close()
        # Minus this look itself.
        return {"clients": clients - 1, "slots_held": held}
    except (redis.exceptions.RedisError, OSError):
        return {"clients": None, "slots_held": None}


def rss_mb(pid: int) -> float:
    return round(rss_bytes(pid) / 2**20, 1)
