"""Run the dev SAML IdP as a child process: `saml_idp_running(...)` for tests,
`saml_idp_start(...)` when the caller manages the lifetime itself."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_PREFIX = "SAML IdP ready at "
READY_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0
HTTP_TIMEOUT_S = 10.0


def loopback_client(url: str) -> httpx.Client:
    """An httpx client that skips proxy settings for loopback URLs."""
    host = urlsplit(url).hostname or ""
    loopback = host in ("127.0.0.1", "localhost", "::1")
    return httpx.Client(timeout=HTTP_TIMEOUT_S, trust_env=not loopback)


def certificate_pem_from_metadata(xml: str) -> str:
    match = re.search(r"<(?:\w+:)?X509Certificate>\s*([^<]+?)\s*<", xml)
    if match is None:
        raise ValueError("no X509Certificate in the IdP metadata")
    body = "".join(match.group(1).split())
    lines = "\n".join(textwrap.wrap(body, 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"


@dataclass
class RunningSamlIdP:
    base_url: str
    process: subprocess.Popen[str] = field(repr=False)
    certificate_pem: str = field(default="", repr=False)

    @property
    def entity_id(self) -> str:
        return f"{self.base_url}/metadata"

    @property
    def sso_url(self) -> str:
        return f"{self.base_url}/sso/redirect"

    def metadata_xml(self) -> str:
        with loopback_client(self.base_url) as client:
            response = client.get(self.entity_id)
        response.raise_for_status()
        return response.text

    def control(self, path: str, payload: Any = None) -> Any:
        """GET (no payload) or POST JSON to /_control/<path>; returns the JSON
        answer, raising httpx.HTTPStatusError on an error status."""
        path = path.removeprefix("/").removeprefix("_control/")
        url = f"{self.base_url}/_control/{path}"
        with loopback_client(url) as client:
            if payload is None:
                response = client.get(url)
            else:
                response = client.post(url, json=payload)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; idempotent."""
        process = self.process
        if process.stdin is not None:
            with suppress(OSError):
                process.stdin.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_GRACE_S)


def _command(
    users_file: Path,
    name: str,
    sp_metadata: list[str],
    sp: Mapping[str, str] | None,
    control: bool,
    port: int,
) -> list[str]:
    command = [sys.executable, "-m", "sso.devidp.saml", "--port", str(port)]
    command += ["--name", name, "--users", str(users_file), "--exit-on-stdin-eof"]
    for source in sp_metadata:
        command += ["--sp-metadata", source]
    for entity_id, acs_url in (sp or {}).items():
        command += ["--sp", f"{entity_id}={acs_url}"]
    if control:
        command.append("--control")
    return command


def _read_ready_line(process: subprocess.Popen[str]) -> str | None:
    """The base URL from the ready line, or None after 20 s or an early exit.
    A daemon thread keeps draining stdout afterwards."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="saml-idp-stdout", daemon=True).start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            return None
        if line.startswith(READY_PREFIX):
            return line[len(READY_PREFIX) :].strip()
    return None


def saml_idp_start(
    *,
    name: str,
    users: dict[str, Any],
    sp_metadata: list[str],
    control: bool = True,
    sp: Mapping[str, str] | None = None,
    port: int = 0,
) -> RunningSamlIdP:
    """Start `python -m sso.devidp.saml`; returns once it is serving. The
    users file lives in a private temporary directory only until then."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])
    )
    with tempfile.TemporaryDirectory(prefix="devidp-saml-launch-") as workdir:
        users_file = Path(workdir) / "users.json"
        users_file.write_text(json.dumps(users), encoding="utf-8")
        process = subprocess.Popen(  # noqa: S603 (our own module, no shell)  # nosec B603
            _command(users_file, name, sp_metadata, sp, control, port),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=env,
        )
        running = RunningSamlIdP(base_url="", process=process)
        base_url = _read_ready_line(process)
    if base_url is None:
        running.stop()
        raise RuntimeError(
            f"the SAML IdP did not start (exit status {process.returncode})"
        )
    running.base_url = base_url
    try:
        running.certificate_pem = certificate_pem_from_metadata(running.metadata_xml())
    except Exception:
        running.stop()
        raise
    return running


@contextmanager
def saml_idp_running(
    *,
    name: str,
    users: dict[str, Any],
    sp_metadata: list[str],
    control: bool = True,
    sp: Mapping[str, str] | None = None,
) -> Iterator[RunningSamlIdP]:
    """A dev SAML IdP for the duration of the block."""
    running = saml_idp_start(
        name=name, users=users, sp_metadata=sp_metadata, control=control, sp=sp
    )
    try:
        yield running
    finally:
        running.stop()
