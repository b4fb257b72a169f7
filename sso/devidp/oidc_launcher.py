"""Start the development OpenID Connect provider as a subprocess.

`oidc_provider_running` is the context manager tests use; `oidc_provider_start`
returns the same running object for a long-lived dev process (call `stop()`).
Both run ``python -m sso.devidp.oidc`` with this interpreter, wait for its
ready line and give back the issuer.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

READY_PREFIX = "OIDC provider ready at "
READY_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class OIDCClient:
    """A relying party: its redirect URIs must match exactly."""

    client_id: str
    client_secret: str
    redirect_uris: Sequence[str]

    def cli_args(self) -> list[str]:
        for part, label in ((self.client_id, "id"), (self.client_secret, "secret")):
            if ":" in part:
                raise ValueError(f"a client {label} may not contain ':'")
        args = []
        for uri in self.redirect_uris:
            args += ["--client", f"{self.client_id}:{self.client_secret}:{uri}"]
        return args


@dataclass
class RunningOIDCProvider:
    issuer: str
    process: subprocess.Popen[str] = field(repr=False)
    workdir: Path = field(repr=False)

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def control(self, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST `payload` to ``/_control/<path>`` (e.g. ``"misbehave"`` or
        ``"users/alice"``); raises `httpx.HTTPStatusError` on a refusal."""
        path = path.removeprefix("/").removeprefix("_control/")
        with httpx.Client(trust_env=False, timeout=10) as http:
            response = http.post(f"{self.issuer}/_control/{path}", json=dict(payload))
            response.raise_for_status()
            return response.json()

    def misbehave(self, mode: str) -> None:
        """Make the next login's ID token (or redirect) misbehave."""
        self.control("misbehave", {"mode": mode})

    def set_user(
        self, username: str, claims: Mapping[str, Any], password: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"claims": dict(claims)}
        if password is not None:
            payload["password"] = password
        return self.control(f"users/{username}", payload)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        """Terminate (SIGTERM), kill after 5 s; returns the exit status."""
        try:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.process.returncode


def _drain(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Read the child's stdout to its end so the pipe never fills."""
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError):
        pass
    finally:
        lines.put(None)


def _wait_ready(process: subprocess.Popen[str], timeout: float) -> str:
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(
        target=_drain, args=(process.stdout, lines), daemon=True, name="oidc-stdout"
    ).start()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"OIDC provider not ready after {timeout:.0f} s")
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        if line is None:
            process.wait(STOP_GRACE_S)
            raise RuntimeError(
                f"OIDC provider exited ({process.returncode}) before it was ready; "
                "see its stderr"
            )
        if line.startswith(READY_PREFIX):
            return line.removeprefix(READY_PREFIX).strip()


def oidc_provider_start(
    *,
    name: str,
    clients: Sequence[OIDCClient],
    users: Mapping[str, Any],
    control: bool = True,
    port: int = 0,
    stderr: IO[Any] | int | None = None,
) -> RunningOIDCProvider:
    """Start the provider and return once it listens. `users` has the shape of
    the users file; `stderr` (default: inherited) receives its request log."""
    if not clients:
        raise ValueError("the provider needs at least one client")
    workdir = Path(tempfile.mkdtemp(prefix="devidp-oidc-"))
    users_file = workdir / "users.json"
    users_file.write_text(json.dumps(users), encoding="utf-8")
    users_file.chmod(0o600)
    command = [sys.executable, "-m", "sso.devidp.oidc", "--port", str(port)]
    command += ["--name", name, "--users", str(users_file)]
    for client in clients:
        command += client.cli_args()
    if control:
        command.append("--control")
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)  # nosec B603
        command,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    running = RunningOIDCProvider(issuer="", process=process, workdir=workdir)
    try:
        running.issuer = _wait_ready(process, READY_TIMEOUT_S)
    except BaseException:
        running.stop()
        raise
    return running


@contextmanager
def oidc_provider_running(
    *,
    name: str,
    clients: Sequence[OIDCClient],
    users: Mapping[str, Any],
    control: bool = True,
    stderr: IO[Any] | int | None = None,
) -> Iterator[RunningOIDCProvider]:
    """Run the provider for the duration of the block."""
    running = oidc_provider_start(
        name=name, clients=clients, users=users, control=control, stderr=stderr
    )
    try:
        yield running
    finally:
        running.stop()
