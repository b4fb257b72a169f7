"""Fixtures for the operations tests: Portico in its own OS process, started
the way the image starts it (docker/entrypoint.sh, then uvicorn), with its
stderr kept for the log tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures_proxy import ServerProcess, subprocess_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# The ops tests' processes start the way the image does and keep their logs.
PorticoProcess = ServerProcess


@pytest.fixture
def portico_process(
    transactional_db: None, tmp_path: Path
) -> Iterator[Callable[..., ServerProcess]]:
    """Start Portico processes on the test database: `start(**env_overrides)`."""
    started: list[ServerProcess] = []

    def start(**overrides: str) -> ServerProcess:
        env = subprocess_env(
            CATALOG_REFRESH_SECONDS="0.2",
            LIMITS_REFRESH_SECONDS="0.2",
            DATA_DIR=str(tmp_path / f"data{len(started)}"),
            **overrides,
        )
        server = ServerProcess(
            env, log_path=tmp_path / f"server{len(started)}.log", entrypoint=True
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.kill()
