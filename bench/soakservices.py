"""The soak's own PostgreSQL and Redis: started, restarted mid-run and stopped
by the soak itself, so that a restart hits only Portico and never the
machine's shared servers (other work and CI use those).

PostgreSQL is a throwaway cluster made by `initdb` in a temporary folder
(run as the `postgres` user when the soak runs as root, since PostgreSQL
refuses to run as root); Redis is a `redis-server` process that keeps nothing
on disk. A restart is a stop, an outage of some seconds, and a start on the
same port, which is what Portico sees when an operator restarts either.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.procs import free_port, stop


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} was not found")
    return path


class PrivatePostgres:
    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="portico-soak-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/soak"

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        if not self.data.exists():
            subprocess.run(  # noqa: S603 (fixed argv)
                _as_postgres(
                    [
                        _pg_bin("initdb"),
                        "-D",
                        str(self.data),
                        "-A",
                        "trust",
                        "-U",
                        "postgres",
                        "--no-sync",
                    ]
                ),
                check=True,
                stdout=subprocess.DEVNULL,
            )
        self._ctl("start", "-o", self._options(), "-l", str(self.log))
        self._database_ensure()

    def _options(self) -> str:
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.folder} -c max_connections=200"
        )

    def _ctl(self, *args: str) -> None:
        subprocess.run(  # noqa: S603 (fixed argv)
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "-w", *args]),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def _database_ensure(self) -> None:
        import psycopg

        admin = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            found = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = 'soak'"
            ).fetchone()
            if not found:
                connection.execute("CREATE DATABASE soak")

    def restart(self, *, outage: float) -> None:
        """Stop (fast: every session is cut), stay down `outage` s, start."""
        self._ctl("stop", "-m", "fast")
        time.sleep(outage)
        self._ctl("start", "-o", self._options(), "-l", str(self.log))

    def close(self) -> None:
        try:
            self._ctl("stop", "-m", "immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxclients",
            "1000",
        ]
        self.process = subprocess.Popen(  # noqa: S603 (fixed argv)
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def restart(self, *, outage: float) -> None:
        """Stopped (everything it held is gone), down `outage` s, started."""
        if self.process is not None:
            stop(self.process)
        time.sleep(outage)
        self.start()

    def close(self) -> None:
        if self.process is not None:
            stop(self.process)
