"""Revocation, deactivation and roll reach another server process within 2 s,
with Redis and without it.

Two real OS processes share PostgreSQL (and Redis, when the portal has one):
a probe (keyprobe.py) authenticates with a key every 10 ms from its warm
in-process cache, while this test process takes the key's power away through
a service.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from accounts.models import User
from accounts.services import IssuedKey, apikey_revoke, apikey_roll, user_deactivate
from tests.factories import apikey_make

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def _start_probe(raw_key: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL or "",
        "DATABASE_CONN_MAX_AGE": "0",
        "LOG_LEVEL": "warning",
    }
    probe = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("keyprobe.py"))],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert probe.stdin is not None
    probe.stdin.write(raw_key + "\n")
    probe.stdin.close()
    return probe


def _read_line(probe: subprocess.Popen[str]) -> str:
    assert probe.stdout is not None
    line = probe.stdout.readline().strip()
    if not line:
        probe.wait(timeout=10)
        assert probe.stderr is not None
        pytest.fail(f"probe ended early: {probe.stderr.read()[-3000:]}")
    return line


def _no_key(raw: str, probe: subprocess.Popen[str]) -> None:
    assert probe.stderr is not None
    assert raw not in probe.stderr.read()


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs a database two processes share"
)
@pytest.mark.parametrize(
    "take_away",
    [
        pytest.param(lambda issued, user: apikey_revoke(key=issued.key), id="revoke"),
        pytest.param(lambda issued, user: user_deactivate(user=user), id="deactivate"),
        pytest.param(lambda issued, user: apikey_roll(key=issued.key), id="roll"),
    ],
)
@pytest.mark.parametrize("signal", ["redis", "database"])
def test_another_process_refuses_the_key_within_two_seconds(
    alice: User,
    take_away: Callable[[IssuedKey, User], object],
    signal: str,
    settings: Any,
) -> None:
    if signal == "redis" and not settings.REDIS_URL:
        pytest.skip("needs Redis (make test sets it)")
    if signal == "database":
        # A portal without Redis: the revocation travels through the database.
        settings.REDIS_URL = ""
    issued = apikey_make(user=alice)
    probe = _start_probe(issued.raw)
    try:
        ready = _read_line(probe)
        assert ready == "ready 1", ready  # one database load, then cache hits
        time.sleep(0.3)  # the probe keeps authenticating from its cache
        take_away(issued, alice)
        taken_at = time.time()
        refused = _read_line(probe)
        assert refused.startswith("refused "), refused
        delay = float(refused.split()[1]) - taken_at
        assert delay < 2.0, (
            f"the other process still accepted the key {delay:.2f}s later"
        )
        assert probe.wait(timeout=10) == 0
        _no_key(issued.raw, probe)
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
