"""Measured model load times, on their way from the proxy to the catalog.

Only the proxy sees a load happen (a request sent to an Ollama backend that did
not hold the model: its time to first token includes the load), and it must
not write the database per request. So a measured load goes to Redis, one
HSET per load (loads are rare: they are what routing avoids), into one hash per
backend, field = the upstream model name, value = seconds. The health check
(catalog.loadstate, every BACKEND_CHECK_INTERVAL_SECONDS) reads a backend's
hash in one HGETALL and copies the figures into Deployment.load_seconds, from
where the catalog snapshot carries them to /v1/models and the chat's picker.

The last figure wins: a load time changes with the model's size and the GPU,
not with traffic, so there is nothing to average. Without Redis (embedded
development set-up) the figures stay in this process's memory, which is
enough when the checks run in the same process and harmless when they do not.

This module owns the key layout; nothing else knows it. No ORM here: the proxy
imports it.
"""

from __future__ import annotations

import logging

import redis

from portal.redisconn import async_redis, sync_redis

logger = logging.getLogger(__name__)

_KEY = "portico:catalog:load_seconds:{backend_id}"
# A backend that is gone leaves its hash behind only this long.
_KEY_TTL_SECONDS = 30 * 24 * 3600
_local: dict[int, dict[str, float]] = {}


async def load_seconds_note(
    *, backend_id: int, upstream_model: str, seconds: float
) -> None:
    """Keep one measured load (one Redis round trip). Never raises: a lost
    figure only leaves /v1/models with the previous one."""
    figure = round(seconds, 3)
    client = async_redis()
    if client is None:
        _local.setdefault(backend_id, {})[upstream_model] = figure
        return
    key = _KEY.format(backend_id=backend_id)
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.hset(key, upstream_model, figure)
            pipe.expire(key, _KEY_TTL_SECONDS)
            await pipe.execute()
    except (redis.RedisError, OSError, TimeoutError):
        logger.warning("could not keep the load time of %s", upstream_model)


def load_seconds_read(*, backend_id: int) -> dict[str, float]:
    """The figures measured for one backend, by upstream model name (one
    HGETALL); empty when Redis does not answer."""
    client = sync_redis()
    if client is None:
        return dict(_local.get(backend_id, {}))
    try:
        raw = client.hgetall(_KEY.format(backend_id=backend_id))
    except (redis.RedisError, OSError):
        logger.warning("could not read the load times of backend %s", backend_id)
        return {}
    figures: dict[str, float] = {}
    for name, value in raw.items():
        try:
            figures[name.decode()] = float(value)
        except (UnicodeDecodeError, ValueError):
            continue
    return figures
