"""`make run`: the demo backend launcher, the admin bootstrap and runportal itself.

runportal is tested as `make run` uses it: a real process on embedded defaults
(a SQLite file in a temporary DATA_DIR, no Redis), serving under uvicorn on a
free loopback port, stopped with a signal.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from portal.demobackend import (
    EMBEDDING_DIMENSIONS,
    MODEL_ID,
    DemoBackendUnavailable,
    demo_backend_start,
    free_port,
)
from portal.devrun import (
    admin_bootstrap,
    admin_login_describe,
    demo_backend_register,
)

ROOT = Path(__file__).resolve().parent.parent


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but not yet reaped by whoever adopted it.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return False


# --- the demo backend ------------------------------------------------------


@pytest.mark.demo_backend
def test_the_demo_backend_streams_a_chat_with_usage_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    try:
        backend = demo_backend_start(log_path=tmp_path / "demo-backend.log")
    except DemoBackendUnavailable as error:
        pytest.skip(f"the demo backend cannot run on this machine: {error}")
    try:
        try:
            backend.wait_healthy(timeout=60)
        except DemoBackendUnavailable as error:
            pytest.skip(f"the demo backend cannot run on this machine: {error}")
        root = f"http://127.0.0.1:{backend.port}"
        assert httpx.get(f"{root}/health").json()["status"] == "ok"
        models = httpx.get(f"{backend.base_url}/models").json()
        assert MODEL_ID in [model["id"] for model in models["data"]]

        request = {
            "model": MODEL_ID,
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 4,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        events = []
        with httpx.stream(
            "POST", f"{backend.base_url}/chat/completions", json=request, timeout=60
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(line.removeprefix("data: "))
        assert events[-1] == "[DONE]"
        chunks = [json.loads(event) for event in events[:-1]]
        text = "".join(
            choice["delta"].get("content") or ""
            for chunk in chunks
            for choice in chunk["choices"]
        )
        assert text.strip()
        usage = chunks[-1]["usage"]
        assert chunks[-1]["choices"] == []
        assert 1 <= usage["completion_tokens"] <= 4
        assert usage["prompt_tokens"] > 0

        # The same server answers /v1/embeddings (a long input too).
        embedded = httpx.post(
            f"{backend.base_url}/embeddings",
            json={"model": MODEL_ID, "input": ["Tartu", "word " * 1500]},
            timeout=60,
        )
        assert embedded.status_code == 200, embedded.text
        vectors = [item["embedding"] for item in embedded.json()["data"]]
        assert [len(vector) for vector in vectors] == [EMBEDDING_DIMENSIONS] * 2
    finally:
        backend.stop()
    assert not process_alive(backend.pid)
    assert not group_alive(backend.pid)


@pytest.mark.demo_backend
@pytest.mark.django_db
def test_each_run_updates_the_one_demo_backend_in_the_catalog(tmp_path: Path) -> None:
    pytest.importorskip("catalog.services", reason="the backend catalog is not there")
    from catalog.models import Backend, Model

    base_urls = []
    for run in range(2):
        try:
            backend = demo_backend_start(log_path=tmp_path / f"run{run}.log")
            backend.wait_healthy(timeout=60)
        except DemoBackendUnavailable as error:
            pytest.skip(f"the demo backend cannot run on this machine: {error}")
        try:
            line = demo_backend_register(backend=backend)
        finally:
            backend.stop()
        assert line.startswith(f"Demo backend ready: {MODEL_ID} at"), line
        base_urls.append(backend.base_url)
    assert base_urls[0] != base_urls[1]
    (registered,) = Backend.objects.all()
    assert registered.name == "demo"
    assert registered.base_url == base_urls[1]
    model = Model.objects.get(public_id=MODEL_ID)
    assert {"chat", "embeddings"} <= model.capabilities
    assert model.embedding_dimensions == EMBEDDING_DIMENSIONS


# --- the admin bootstrap ---------------------------------------------------


@pytest.mark.django_db
def test_the_admin_is_created_once_with_a_login_that_works(client: Client) -> None:
    first = admin_bootstrap()
    assert first.created and first.password
    text = admin_login_describe(login=first, url="http://127.0.0.1:8000/")
    assert "http://127.0.0.1:8000/accounts/login/" in text
    assert "username: admin" in text
    assert f"password: {first.password}" in text

    response = client.post(
        reverse("account_login"), {"login": "admin", "password": first.password}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("home")

    again = admin_bootstrap()
    assert not again.created
    assert again.password is None
    text = admin_login_describe(login=again, url="http://127.0.0.1:8000/")
    assert "An admin account exists (admin)" in text
    assert "changepassword admin" in text
    assert first.password not in text
    assert User.objects.filter(is_superuser=True).count() == 1


@pytest.mark.django_db
def test_an_existing_superuser_is_never_replaced_or_reset(staff: User) -> None:
    login = admin_bootstrap(password="an explicit password from the environment")
    assert not login.created
    assert login.username == staff.username
    staff.refresh_from_db()
    assert not staff.check_password("an explicit password from the environment")


@pytest.mark.django_db
def test_the_first_admin_takes_the_password_given_by_the_environment() -> None:
    login = admin_bootstrap(password="a long passphrase for the first admin")
    assert login.created
    assert User.objects.get(username="admin").check_password(
        "a long passphrase for the first admin"
    )


# --- runportal as a process --------------------------------------------------


@pytest.fixture(scope="module")
def embedded_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of `make run`: no DATABASE_URL, no REDIS_URL, DEBUG on."""
    data_dir = tmp_path_factory.mktemp("runportal")
    drop = {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env = {k: v for k, v in env.items() if not k.startswith("DJANGO_SUPERUSER_")}
    env.update(DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    return env


class Portal:
    def __init__(self, process: subprocess.Popen[bytes], output: Path, port: int):
        self.process, self.output, self.port = process, output, port
        self.url = f"http://127.0.0.1:{port}"

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for_page(self, path: str, timeout: float = 30.0) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.text()
            try:
                return httpx.get(self.url + path, timeout=2).raise_for_status()
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"{path} not served within {timeout} s:\n{self.text()}")

    def wait_for_text(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text())
            if match:
                return match
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.text()}")

    def backend_pid(self) -> int | None:
        match = re.search(r"Demo backend starting \(pid (\d+)", self.text())
        return int(match.group(1)) if match else None


@pytest.fixture
def portal_start(
    embedded_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., Portal]]:
    started: list[Portal] = []

    def start(
        port: int | None = None,
        *,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> Portal:
        port = port or free_port()
        output = tmp_path / f"runportal-{port}.out"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "runportal", "--port", str(port), *args],
                cwd=ROOT,
                env=embedded_env | (env or {}),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        portal = Portal(process, output, port)
        started.append(portal)
        return portal

    yield start
    for portal in started:
        if portal.process.poll() is None:
            portal.process.kill()
            portal.process.wait()


def test_runportal_serves_pages_and_static_files_and_stops_cleanly_on_sigterm(
    portal_start: Callable[..., Portal],
) -> None:
    portal = portal_start()
    login_page = portal.wait_for_page("/accounts/login/")
    assert 'name="login"' in login_page.text
    css = httpx.get(portal.url + "/static/css/portico.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")

    # The printed admin login works on the live server.
    printed = re.search(r"password: (\S+)", portal.text())
    if printed:  # only on the run that created the admin
        with httpx.Client(base_url=portal.url) as browser:
            browser.get("/accounts/login/")
            response = browser.post(
                "/accounts/login/",
                data={
                    "login": "admin",
                    "password": printed.group(1),
                    "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                },
                headers={"Referer": portal.url + "/accounts/login/"},
            )
            assert response.status_code == 302, response.text
            assert response.headers["location"] == "/"

    # Let the backend reach its outcome (registered, skipped or unavailable) so
    # that the stop below also covers a backend that is up and serving.
    portal.wait_for_text(r"Demo backend (ready|unavailable)|registration skipped")
    backend_pid = portal.backend_pid()
    portal.process.send_signal(signal.SIGTERM)
    assert portal.process.wait(timeout=20) == 0, portal.text()
    if backend_pid is not None:
        assert wait_gone(backend_pid), f"demo backend {backend_pid} outlived runportal"
        assert not group_alive(backend_pid)
    else:
        assert "Demo backend unavailable" in portal.text()


def test_sso_demo_lets_a_newcomer_sign_in_through_the_demo_provider(
    portal_start: Callable[..., Portal],
) -> None:
    from sso.tests.oidcflow import provider_login, sign_in_start

    portal = portal_start(args=("--no-demo-backend",), env={"SSO_DEMO": "1"})
    portal.wait_for_page("/accounts/login/")
    described = portal.wait_for_text(
        r"provider at (\S+)\)\..*\n\s+username: (\S+)\n\s+password: (\S+)"
    )
    issuer, username, password = described.groups()
    assert (
        "Sign in with Demo University"
        in httpx.get(portal.url + "/accounts/login/").text
    )

    client, authorize = sign_in_start(portal.url, provider_id="demo-university")
    callback = provider_login(client, authorize, username=username, password=password)
    assert client.get(callback).status_code == 302
    assert client.get("/settings/account/").status_code == 200

    portal.process.send_signal(signal.SIGTERM)
    assert portal.process.wait(timeout=20) == 0, portal.text()
    assert "SSO demo provider stopped" in portal.text()
    with pytest.raises(httpx.ConnectError):
        httpx.get(issuer + "/.well-known/openid-configuration", timeout=2)


def test_the_demo_backend_is_stopped_when_uvicorn_cannot_start(
    portal_start: Callable[..., Portal],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        portal = portal_start(port=taken.getsockname()[1])
        assert portal.process.wait(timeout=30) != 0
    backend_pid = portal.backend_pid()
    if backend_pid is not None:
        assert wait_gone(backend_pid), f"demo backend {backend_pid} outlived runportal"


@pytest.mark.demo_backend
def test_make_run_then_the_settings_page_python_snippet_streams_an_answer(
    portal_start: Callable[..., Portal], embedded_env: dict[str, str]
) -> None:
    """The README's promise, end to end: `make run`, sign in, create a key in
    Settings > Account, paste the Python snippet: an answer streams from the
    embedded demo backend."""
    import html

    password = "a long demo passphrase 7"
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from tests.factories import user_make; "
            f"user_make(username='researcher', password={password!r})",
        ],
        cwd=ROOT,
        env=embedded_env,
        check=True,
        timeout=60,
    )
    portal = portal_start()
    portal.wait_for_page("/accounts/login/")
    ready = portal.wait_for_text(r"Demo backend (ready|unavailable)", timeout=90)
    if ready.group(1) == "unavailable":
        pytest.skip("the demo backend cannot run on this machine")
    with httpx.Client(base_url=portal.url, timeout=30) as browser:
        browser.get("/accounts/login/")
        browser.post(
            "/accounts/login/",
            data={
                "login": "researcher",
                "password": password,
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
            headers={"Referer": portal.url + "/accounts/login/"},
        )
        browser.get("/settings/account/")
        created = browser.post(
            "/settings/account/keys/",
            data={
                "name": "laptop",
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
            headers={"Referer": portal.url + "/settings/account/"},
            follow_redirects=True,
        )
    assert created.status_code == 200, created.text[:500]
    snippet = re.search(r'<code id="snippet-python">(.*?)</code>', created.text, re.S)
    assert snippet, created.text[:2000]
    code = html.unescape(snippet.group(1))
    assert f"{portal.url}/v1" in code and "stream=True" in code
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "an answer streamed"
    # Metered on SQLite too (the writer's non-PostgreSQL path): the record
    # lands within a flush interval or two.
    count_records = (
        "from usage.models import UsageRecord; print(UsageRecord.objects.filter("
        "endpoint='chat/completions', client='api', status=200, "
        "completion_tokens__gt=0).count())"
    )
    deadline = time.monotonic() + 20
    while True:
        counted = subprocess.run(
            [sys.executable, "manage.py", "shell", "-v", "0", "-c", count_records],
            cwd=ROOT,
            env=embedded_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if counted.stdout.strip() == "1" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert counted.stdout.strip() == "1", counted.stdout + counted.stderr
