"""/healthz, /readyz and /metrics, served on the lean ASGI side.

Not through Django: its views run in a thread pool, and a pool stuck on slow
pages must not make the liveness probe fail (an orchestrator would then kill
a process that is still streaming tokens fine), nor hide the metrics that
would show why. These paths pass no Django middleware, so no HTTPS redirect
or ALLOWED_HOSTS check applies (probes and scrapers talk plain HTTP inside
the cluster).

- /healthz: the process and its event loop answer. Nothing else is asked.
- /readyz: the database, Redis (when configured) and at least one healthy
  backend; 503 with a JSON body naming what is down.
- /metrics: Prometheus text, for METRICS_ALLOWED_NETWORKS or a bearer token.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from typing import Any

from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from apiproxy.gauges import gauges_register
from apiproxy.http import Receive, Send, header_get
from ops.selectors import backend_health_counts
from portal.dbthread import in_db_thread
from portal.redisconn import async_redis

PROBE_PATH_PATTERN = r"^(?:healthz|readyz|metrics)$"

gauges_register()


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes, head: bool = False
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})


class _DatabaseProbe:
    """At most one database check in flight per process: a database that
    hangs must not make every probe start a thread that hangs with it (the
    threads are shared with the catalog reload and the usage writer)."""

    def __init__(self) -> None:
        self.pending: asyncio.Future[dict[str, int]] | None = None

    async def check(self, within: float) -> dict[str, int]:
        pending = self.pending
        if (
            pending is None
            or pending.done()
            or pending.get_loop() is not asyncio.get_running_loop()
        ):
            read = in_db_thread(backend_health_counts)
            pending = self.pending = asyncio.ensure_future(read)
        return await asyncio.wait_for(asyncio.shield(pending), within)


_database_probe = _DatabaseProbe()


async def _redis_check(within: float) -> dict[str, Any]:
    client = async_redis()
    if client is None:
        return {"ok": True, "detail": "not configured (in-process limits)"}
    try:
        await asyncio.wait_for(client.ping(), within)
    except Exception as error:
        # The class only: messages carry addresses that are nobody's business.
        return {"ok": False, "detail": f"no answer ({type(error).__name__})"}
    return {"ok": True}


async def readiness() -> dict[str, Any]:
    timeout = settings.READYZ_TIMEOUT_SECONDS
    database: dict[str, Any] = {"ok": True}
    backends: dict[str, Any]
    redis_task = asyncio.ensure_future(_redis_check(timeout))
    try:
        counts = await _database_probe.check(timeout)
    except Exception as error:
        database = {"ok": False, "detail": f"no answer ({type(error).__name__})"}
        backends = {"ok": False, "detail": "unknown: the database did not answer"}
    else:
        backends = {"ok": counts["healthy"] > 0, **counts}
        if not counts["enabled"]:
            backends["detail"] = "no enabled backend"
        elif not counts["healthy"]:
            backends["detail"] = "every enabled backend fails its health checks"
    checks = {"database": database, "redis": await redis_task, "backends": backends}
    down = [name for name, check in checks.items() if not check["ok"]]
    return {"status": "not ready" if down else "ready", "down": down, "checks": checks}


def metrics_allowed(scope: dict[str, Any]) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        sent = header_get(scope["headers"], b"authorization") or b""
        if hmac.compare_digest(sent, f"Bearer {token}".encode()):
            return True
    client = scope.get("client")
    if not client:
        return False  # a Unix socket: whoever is behind it, ask for the token
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False)
        for network in settings.METRICS_ALLOWED_NETWORKS
    )


async def probes_application(
    scope: dict[str, Any], receive: Receive, send: Send
) -> None:
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if method not in ("GET", "HEAD"):
        await _respond(send, 405, b"GET only\n", b"text/plain; charset=utf-8")
        return
    head = method == "HEAD"
    if path == "/healthz":
        await _respond(send, 200, b"ok\n", b"text/plain; charset=utf-8", head)
    elif path == "/readyz":
        report = await readiness()
        status = 200 if not report["down"] else 503
        body = json.dumps(report).encode()
        await _respond(send, status, body, b"application/json", head)
    elif not metrics_allowed(scope):
        body = b"Forbidden: see METRICS_ALLOWED_NETWORKS and METRICS_TOKEN\n"
        await _respond(send, 403, body, b"text/plain; charset=utf-8", head)
    else:
        # On the event loop on purpose: the collectors read state this loop
        # mutates, and a scrape takes about a millisecond.
        body = generate_latest(REGISTRY)
        await _respond(send, 200, body, CONTENT_TYPE_LATEST.encode(), head)
