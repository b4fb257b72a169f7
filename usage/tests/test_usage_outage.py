"""Postgres unreachable under load: every record arrives afterwards, once.

Portico runs in its own process with DATABASE_URL pointing at a TCP fault
proxy in front of the test database; the test cuts the proxy (every connection
dropped, new ones refused) while clients keep sending requests, then restores
it. Other tests and this test's own queries use Postgres directly.

The cut lasts USAGE_OUTAGE_TEST_SECONDS (default 12; the issue's figure is
60). The shorter default exercises the same code paths that a minute does:
with USAGE_FLUSH_RETRY_MAX_SECONDS=2 the flusher fails at least five times
with growing backoff and reaches its cap; with USAGE_BUFFER_MAX_RECORDS=30
the memory bound is passed and records go to spool files; the database
connections are all broken and must be made anew. A longer cut only repeats
these steps (in production with a 30 s backoff cap). Run it with
USAGE_OUTAGE_TEST_SECONDS=60 to see the full minute.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
from django.db import connection

from accounts.services import apikey_create
from tests.factories import user_make
from tests.fakebackend import FakeBackend
from tests.faultproxy import FaultProxy
from tests.fixtures_proxy import model_register, subprocess_database_url
from usage.models import UsageRecord

OUTAGE_SECONDS = float(os.environ.get("USAGE_OUTAGE_TEST_SECONDS", "12"))
CLIENTS = 4
MESSAGES = [{"role": "user", "content": "one more, please"}]


class Load:
    """Clients sending requests back to back (half streamed) until stopped."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url, self.key = base_url, key
        self.ids: list[str] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.run, args=(n,)) for n in range(CLIENTS)
        ]

    def run(self, number: int) -> None:
        headers = {"authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=20) as http:
            sent = 0
            while not self.stopping.is_set():
                body = {"model": "fake-chat", "messages": MESSAGES, "max_tokens": 4}
                if (number + sent) % 2:
                    body["stream"] = True
                response = http.post("/v1/chat/completions", json=body)
                with self.lock:
                    if response.status_code == 200:
                        self.ids.append(response.headers["x-request-id"])
                    else:
                        self.failures.append(f"{response.status_code} {response.text}")
                sent += 1
                time.sleep(0.02)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)


def records_of(user_id: int) -> list[str]:
    return list(
        UsageRecord.objects.filter(user_id=user_id).values_list("request_id", flat=True)
    )


def test_a_postgres_outage_under_load_loses_no_record_and_writes_none_twice(
    server_processes, fake_backend: FakeBackend, tmp_path: Path
) -> None:
    alice = user_make(username="alice")
    key = apikey_create(user=alice, name="load").raw
    model_register(fake_backend)
    params = connection.settings_dict
    fault = FaultProxy(
        params.get("HOST") or "127.0.0.1", int(params.get("PORT") or 5432)
    )
    fault.start()
    try:
        server = server_processes(
            DATABASE_URL=subprocess_database_url(host="127.0.0.1", port=fault.port),
            DATA_DIR=str(tmp_path),
            USAGE_FLUSH_SECONDS="0.2",
            USAGE_BUFFER_MAX_RECORDS="30",
            USAGE_FLUSH_RETRY_MAX_SECONDS="2",
            # What the proxy caches must outlive the outage (as in production,
            # where it is read before the database goes away).
            API_KEY_CACHE_SECONDS="300",
            CATALOG_REFRESH_SECONDS="300",
            LIMITS_REFRESH_SECONDS="300",
            USAGE_QUOTA_REFRESH_SECONDS="300",
            DEFAULT_USER_RPM="0",
            DEFAULT_USER_TPM="0",
        )
        spool = tmp_path / "usage-spool"
        with Load(server.url, key) as load:
            time.sleep(1.5)  # traffic with the database up
            fault.cut()
            cut_at = time.monotonic()
            time.sleep(0.5)
            written_at_cut = len(records_of(alice.pk))
            spilled_during_cut = False
            while time.monotonic() - cut_at < OUTAGE_SECONDS:
                time.sleep(0.5)
                spilled_during_cut |= spool.is_dir() and any(spool.iterdir())
            assert len(records_of(alice.pk)) == written_at_cut, "the cut held"
            served_during_cut = len(load.ids)
            fault.restore()
            time.sleep(1.5)  # traffic with the database back
        assert not load.failures, load.failures[:3]
        sent = list(load.ids)
        assert len(sent) > written_at_cut + 50, "requests kept coming during the cut"
        assert served_during_cut > written_at_cut
        assert spilled_during_cut, "the memory bound was passed"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(records_of(alice.pk)) < len(sent):
            time.sleep(0.5)
        written = records_of(alice.pk)
        assert len(written) == len(set(written)) == len(sent)
        assert set(written) == set(sent)
        assert not any(spool.iterdir()), "every spool file was replayed"
    finally:
        fault.close()
