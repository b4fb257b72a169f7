"""Fixtures for the operations tests: Portico in its own OS process, started
the way the image starts it (docker/entrypoint.sh, then uvicorn), with its
stderr kept for the log tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures_browser import free_port
from tests.fixtures_proxy import subprocess_database_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class PorticoProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PorticoProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "/bin/sh",
                    str(ROOT / "docker" / "entrypoint.sh"),
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "portal.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-access-log",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
            )
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
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def portico_process(
    transactional_db: None, tmp_path: Path
) -> Iterator[Callable[..., PorticoProcess]]:
    """Start Portico processes on the test database: `start(**env_overrides)`."""
    started: list[PorticoProcess] = []

    def start(**overrides: str) -> PorticoProcess:
        env = {
            **os.environ,
            "DATABASE_URL": subprocess_database_url(),
            "DATABASE_CONN_MAX_AGE": "0",
            "CATALOG_REFRESH_SECONDS": "0.2",
            "LIMITS_REFRESH_SECONDS": "0.2",
            "USAGE_FLUSH_SECONDS": "0.1",
            "DATA_DIR": str(tmp_path / f"data{len(started)}"),
            **overrides,
        }
        server = PorticoProcess(env, tmp_path / f"server{len(started)}.log")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
