"""Looking at the test run's Redis from outside the code under test."""

from __future__ import annotations

import redis


def evalsha_calls(client: redis.Redis) -> int:
    """Script calls Redis has served so far (its command statistics): the
    proxy's round trips, since its every Redis call on the hot path is one."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0))
