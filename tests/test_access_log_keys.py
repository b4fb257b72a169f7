"""Keys never reach a log: a key sent in the URL (`?api_key=sk-...`) is refused
by the proxy, and uvicorn's access line, which records the path with its query
string, shows the path with the key masked (portal.accesslog). Checked on real
server processes started the way the image starts them (docker/entrypoint.sh,
then the Dockerfile's uvicorn command) and the way `make run` does
(runportal), with the access log on, in both log formats."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from accounts.models import User
from portal.accesslog import AccessKeysMasked, path_mask
from tests.factories import apikey_make
from tests.fixtures_browser import free_port
from tests.fixtures_proxy import subprocess_env

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-ptc_" + "A1b2C3d4E5" + "x" * 32 + "Zz9Yy8"


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        ("/v1/models", "/v1/models"),
        ("/v1/models?limit=5&order=asc", "/v1/models?limit=5&order=asc"),
        (f"/v1/models?api_key={KEY}", "/v1/models?api_key=***"),
        ("/v1/models?x=1&key=hunter2&y=2", "/v1/models?x=1&key=***&y=2"),
        (
            "/v1/models?token=abc;access_token=def",
            "/v1/models?token=***;access_token=***",
        ),
        ("/v1/models?API-KEY=abc&apikey=def", "/v1/models?API-KEY=***&apikey=***"),
        (f"/v1/models?q={KEY}", "/v1/models?q=***"),
        (f"/v1/models?q={quote(KEY, safe='')}x", "/v1/models?q=***"),
        (f"/v1/models?q=sk%2D{KEY[3:]}", "/v1/models?q=***"),
        (f"/v1/models?{KEY}", "/v1/models?sk-***"),
        (f"/v1/{KEY}/models", "/v1/sk-***/models"),
        ("/v1/models?monkey=&task-x=1", "/v1/models?monkey=&task-x=1"),
        ("/v1/tasks-list?sk=1", "/v1/tasks-list?sk=1"),
    ],
)
def test_the_mask_keeps_the_path_and_drops_the_key(logged: str, shown: str) -> None:
    assert path_mask(logged) == shown


def test_the_filter_rewrites_uvicorn_s_access_record_and_keeps_its_shape() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/v1/models?api_key={KEY}", "1.1", 401),
        None,
    )
    assert AccessKeysMasked().filter(record) is True
    assert record.getMessage() == (
        '127.0.0.1:5000 - "GET /v1/models?api_key=*** HTTP/1.1" 401'
    )
    # Django configures logging on every setup(): one filter, not one per setup.
    logger = logging.getLogger("test.accesslog")
    logger.addFilter(AccessKeysMasked())
    logger.addFilter(AccessKeysMasked())
    assert len(logger.filters) == 1


# --- real server processes ---------------------------------------------------


class Server:
    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not start:\n{self.output()}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.output()


def image_command(port: int) -> list[str]:
    """docker/Dockerfile's ENTRYPOINT and CMD, on a loopback port."""
    return [
        "/bin/sh",
        str(ROOT / "docker" / "entrypoint.sh"),
        sys.executable,
        "-m",
        "uvicorn",
        "portal.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--proxy-headers",
    ]


def make_run_command(port: int) -> list[str]:
    return [
        sys.executable,
        "manage.py",
        "runportal",
        "--no-demo-backend",
        "--port",
        str(port),
    ]


@pytest.fixture
def server_start(
    transactional_db: None, tmp_path: Path
) -> Iterator[Callable[..., tuple[Server, str]]]:
    started: list[Server] = []

    def start(how: Callable[[int], list[str]], **env: str) -> tuple[Server, str]:
        port = free_port()
        server = Server(
            how(port),
            subprocess_env(DATA_DIR=str(tmp_path / "data"), **env),
            tmp_path / f"server-{port}.log",
        )
        started.append(server)
        url = f"http://127.0.0.1:{port}"
        server.wait_ready(url)
        return server, url

    yield start
    for server in started:
        server.stop()


@pytest.mark.parametrize(
    ("how", "log_format"),
    [
        (image_command, "plain"),
        (image_command, "json"),
        (make_run_command, "plain"),
    ],
    ids=["image-plain", "image-json", "make-run"],
)
def test_a_key_in_the_url_never_reaches_the_server_s_output(
    server_start: Callable[..., tuple[Server, str]],
    alice: User,
    how: Callable[[int], list[str]],
    log_format: str,
) -> None:
    key = apikey_make(user=alice).raw
    server, url = server_start(how, LOG_FORMAT=log_format, LOG_LEVEL="info")
    refused = httpx.get(f"{url}/v1/models", params={"api_key": key})
    assert refused.status_code == 401
    paths = [
        f"/v1/models?access_token={key}",
        f"/v1/models?limit=5&q={quote(key, safe='')}",
    ]
    for path in paths:
        httpx.get(url + path)
    # The key in the header as well: served, and still not in the log.
    served = httpx.get(
        f"{url}/v1/models?token={key}", headers={"authorization": f"Bearer {key}"}
    )
    assert served.status_code == 200
    deadline = time.monotonic() + 10
    while server.output().count("GET /v1/models") < 4:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)

    output = server.stop()
    assert key not in output
    assert key[7:] not in output  # nor the part after the site tag
    # The lines are there, with their paths.
    assert "GET /v1/models?api_key=*** HTTP/1.1" in output
    assert "GET /v1/models?access_token=*** HTTP/1.1" in output
    assert "GET /v1/models?limit=5&q=*** HTTP/1.1" in output
    assert "GET /v1/models?token=*** HTTP/1.1" in output
    assert "portico.requests" in output


def test_no_access_log_still_silences_the_access_lines(
    server_start: Callable[..., tuple[Server, str]],
) -> None:
    """The mask is added beside uvicorn's handlers, not in place of them: an
    operator's --no-access-log keeps its meaning (plain format)."""
    server, url = server_start(
        lambda port: [*image_command(port), "--no-access-log"],
        LOG_FORMAT="plain",
        LOG_LEVEL="info",
    )
    for _ in range(3):
        assert httpx.get(f"{url}/healthz").status_code == 200
    time.sleep(0.3)
    assert "GET /healthz" not in server.stop()
