"""Fixtures for driving the proxy for real: the whole ASGI app under uvicorn in
a thread, a fake OpenAI backend on loopback registered as an ordinary backend,
and alice with a real API key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from accounts.models import User
from accounts.services import apikey_create
from tests.factories import user_make
from tests.fakebackend import FakeBackend
from tests.fixtures_browser import ThreadedUvicorn

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ProxyRig:
    server: ThreadedUvicorn
    backend: FakeBackend
    user: User
    key: str

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def openai(self, **options: Any) -> Any:
        from openai import OpenAI

        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 20)
        return OpenAI(base_url=self.base_url, api_key=self.key, **options)

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            headers={"authorization": f"Bearer {self.key}"},
            timeout=20,
        )

    def usage_record(self, request_id: str, *, timeout: float = 10.0) -> Any:
        """The usage record of a request, once the buffer has flushed it."""
        from usage.models import UsageRecord

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = UsageRecord.objects.filter(request_id=request_id).first()
            if record is not None:
                return record
            time.sleep(0.05)
        raise AssertionError(f"no usage record for {request_id} after {timeout}s")


def model_register(
    backend: FakeBackend, *, name: str = "fake", **backend_fields: Any
) -> Any:
    """Register a fake backend the way an operator does (addbackend's service)."""
    from apiproxy.catalog import catalog
    from catalog.services import backend_add, backend_discover_models

    registered = backend_add(name=name, base_url=backend.base_url, **backend_fields)
    backend_discover_models(backend=registered)
    catalog.invalidate()
    return registered


@pytest.fixture
def proxy(
    transactional_db: None, fake_backend: FakeBackend, settings: Any
) -> Iterator[ProxyRig]:
    settings.USAGE_FLUSH_SECONDS = 0.05
    settings.CATALOG_REFRESH_SECONDS = 0.0
    settings.BACKEND_READ_TIMEOUT = 3.0
    from apiproxy.refusals import refusal_budget
    from apiproxy.routing import picker
    from apiproxy.tokenize import tokenizers

    picker.refused_until.clear()
    tokenizers.clear()  # backend ids repeat across tests
    refusal_budget.__init__()  # a fresh minute: refusals of earlier tests do not count
    user = user_make(username="alice")
    issued = apikey_create(user=user, name="tests")
    model_register(fake_backend)
    server = ThreadedUvicorn()
    server.start()
    try:
        yield ProxyRig(server=server, backend=fake_backend, user=user, key=issued.raw)
    finally:
        server.stop()


class ServerProcess:
    """Portico under uvicorn in its own OS process, on the test database: for
    tests that need several processes, one to kill or signal, or its logs.
    With `entrypoint`, it starts the way the image does (docker/entrypoint.sh)."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        log_path: Path | None = None,
        entrypoint: bool = False,
    ) -> None:
        from tests.fixtures_browser import free_port

        self.port = free_port()
        self.env = env
        self.log_path = log_path
        self.entrypoint = entrypoint
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "portal.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
        ]
        if self.entrypoint:
            command = ["/bin/sh", str(ROOT / "docker" / "entrypoint.sh"), *command]
        else:
            command += ["--log-level", "warning"]
        sink = self.log_path.open("ab") if self.log_path else None
        try:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=sink, stderr=sink
            )
        finally:
            if sink is not None:
                sink.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def subprocess_database_url(*, host: str | None = None, port: int | None = None) -> str:
    """The URL of the database this test run uses (pytest-django's test_*)."""
    from django.db import connection

    params = connection.settings_dict
    user = params.get("USER") or "postgres"
    return (
        f"postgres://{user}@{host or params.get('HOST') or '127.0.0.1'}:"
        f"{port or params.get('PORT') or 5432}/{params['NAME']}"
    )


def subprocess_env(**overrides: str) -> dict[str, str]:
    """The environment of a Portico process on this test run's database, with
    caches short enough for tests to see their changes quickly."""
    return {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "DATABASE_CONN_MAX_AGE": "0",
        "CATALOG_REFRESH_SECONDS": "0.5",
        "LIMITS_REFRESH_SECONDS": "0.5",
        "USAGE_FLUSH_SECONDS": "0.1",
        **overrides,
    }


@pytest.fixture
def server_processes(transactional_db: None) -> Iterator[Callable[..., ServerProcess]]:
    """Start Portico processes: `start(**env_overrides)`; all stopped after."""
    started: list[ServerProcess] = []

    def start(**overrides: str) -> ServerProcess:
        server = ServerProcess(subprocess_env(**overrides))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
