"""`make run`: bootstrap an admin, start the demo backend, serve under uvicorn.

The runportal command is a thin wrapper around `portal_run`. The order is chosen
for a fast first page: the demo backend starts loading first, the admin is made
while it loads, and the portal serves at once; a helper thread waits for the
backend's /health and registers it as an ordinary backend when it answers.
Whatever happens (Ctrl-C, SIGTERM, uvicorn failing to bind), the backend is
stopped before the process exits.
"""

from __future__ import annotations

import secrets
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from django.conf import settings
from django.db import connections

from accounts.services import admin_ensure
from catalog.declared import model_capabilities_declare
from catalog.services import backend_add, backend_discover_models
from portal.demobackend import (
    EMBEDDING_DIMENSIONS,
    MODEL_ID,
    DemoBackend,
    DemoBackendFailed,
    DemoBackendUnavailable,
    demo_backend_start,
)
from portal.devsso import DemoSSO, demo_sso_describe, demo_sso_start

DEMO_BACKEND_NAME = "demo"
ADMIN_USERNAME = "admin"
ADMIN_EMAIL = "admin@localhost"


class PortalStopped(Exception):
    """Raised by the SIGINT/SIGTERM handler so that every finally clause runs."""


@dataclass(frozen=True)
class AdminLogin:
    username: str
    password: str | None  # None: the admin existed already; its password is not ours
    created: bool


def admin_bootstrap(
    *, username: str = ADMIN_USERNAME, email: str = ADMIN_EMAIL, password: str = ""
) -> AdminLogin:
    """Create the first superuser with a random (or the given) password.

    Never touches an existing superuser: an operator's changed password stays.
    """
    chosen = password or secrets.token_urlsafe(12)
    user, created = admin_ensure(username=username, email=email, password=chosen)
    return AdminLogin(
        username=user.get_username(),
        password=chosen if created else None,
        created=created,
    )


def admin_login_describe(*, login: AdminLogin, url: str) -> str:
    if login.created:
        return (
            f"Admin account created. Log in at {url}accounts/login/\n"
            f"    username: {login.username}\n"
            f"    password: {login.password}\n"
            f"(shown only now; change it with "
            f"`.venv/bin/python manage.py changepassword {login.username}`)"
        )
    return (
        f"An admin account exists ({login.username}). Log in at {url}accounts/login/;"
        f" forgot the password? `.venv/bin/python manage.py changepassword"
        f" {login.username}`"
    )


def mail_describe() -> str:
    """The start-up line that says where the portal's e-mail goes."""
    if settings.EMAIL_HOST:
        return f"E-mail is sent through {settings.EMAIL_HOST}:{settings.EMAIL_PORT}."
    shown = (
        "; sign-up verification links are also shown on the page"
        if settings.MAIL_SHOWN_ON_PAGE
        else ""
    )
    return (
        "E-mail is not sent (EMAIL_HOST is unset): messages are printed in this"
        f" terminal{shown}."
    )


def demo_backend_register(*, backend: DemoBackend) -> str:
    """Register the running demo backend as the ordinary backend named "demo".

    The port changes on every run, so the existing "demo" backend is updated in
    place (backend_add upserts by name) rather than added again; its pool and
    limit are left as staff may have set them. Returns a line for the console.
    """
    registered = backend_add(name=DEMO_BACKEND_NAME, base_url=backend.base_url)
    result = backend_discover_models(backend=registered)
    if not result.ok:
        return (
            f"Demo backend registered as {DEMO_BACKEND_NAME!r} at {backend.base_url},"
            f" but model discovery failed: {result.error}"
        )
    # llama-server reports every model as "completion"; the demo one also
    # serves embeddings (portal.demobackend).
    model_capabilities_declare(
        public_id=backend.model_id,
        embeddings=True,
        embedding_dimensions=EMBEDDING_DIMENSIONS,
    )
    served = ", ".join(result.served) or "no models"
    return (
        f"Demo backend ready: {served} at {backend.base_url}"
        f" (registered as backend {DEMO_BACKEND_NAME!r})"
    )


def _register_when_healthy(
    *, backend: DemoBackend, stopping: threading.Event, say: Callable[[str], None]
) -> None:
    try:
        backend.wait_healthy()
        if not stopping.is_set():
            say(demo_backend_register(backend=backend))
    except (DemoBackendFailed, DemoBackendUnavailable) as error:
        if not stopping.is_set():
            say(f"Demo backend unavailable: {error}\nServing without a backend.")
    except Exception as error:  # the portal keeps serving regardless
        if not stopping.is_set():
            say(f"Demo backend registration failed: {error!r}")
    finally:
        connections.close_all()  # this thread's connections only


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into PortalStopped for the duration of the run.

    uvicorn handles these signals while it serves and re-raises them after its
    graceful shutdown; with Python's default SIGTERM action the process would
    die right there, skipping the finally clause that stops the backend.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise PortalStopped(signal.Signals(signum).name)

    previous = {
        sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _serve(*, host: str, port: int) -> None:
    import uvicorn

    # WhiteNoise's file responses are synchronous iterators; Django warns about
    # them under ASGI on the first static file, which is noise for a dev server.
    warnings.filterwarnings(
        "ignore", message="StreamingHttpResponse must consume synchronous iterators"
    )

    # The same server and flags as production (docker/Dockerfile), minus the
    # proxy headers: uvloop and httptools where installed. On SIGTERM running
    # streams get SHUTDOWN_GRACE seconds, then the lifespan drains the meter.
    # uvicorn's own log config first, then Django's LOGGING again when the app
    # loads: the access log stays on, in LOG_FORMAT, with keys masked
    # (portal.accesslog), as in the image.
    config = uvicorn.Config(
        "portal.asgi:application",
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=settings.SHUTDOWN_GRACE,
    )
    uvicorn.Server(config).run()


def _demo_sso_start(
    *, port: int, url: str, say: Callable[[str], None]
) -> DemoSSO | None:
    try:
        demo = demo_sso_start(port=port)
    except ImportError:
        say("SSO_DEMO needs the development packages: run `SSO_DEMO=1 make run`.")
        return None
    say(demo_sso_describe(demo=demo, url=url))
    return demo


def _helpers_stop(
    *,
    backend: DemoBackend | None,
    demo_sso: DemoSSO | None,
    say: Callable[[str], None],
) -> None:
    if backend is not None and backend.stop():
        say(f"Demo backend stopped (pid {backend.pid}).")
    if demo_sso is not None:
        demo_sso.stop()
        say("SSO demo provider stopped.")


def portal_run(
    *,
    host: str,
    port: int,
    stdout: TextIO,
    log_dir: Path,
    demo_backend: bool = True,
    admin_password: str = "",
    admin_username: str = ADMIN_USERNAME,
    admin_email: str = ADMIN_EMAIL,
) -> None:
    """Serve the portal until Ctrl-C or SIGTERM; the demo backend never outlives it."""
    url = f"http://{host}:{port}/"

    def say(text: str) -> None:
        stdout.write(text + "\n")
        stdout.flush()

    backend: DemoBackend | None = None
    demo_sso: DemoSSO | None = None
    stopping = threading.Event()
    with _stop_on_signals():
        try:
            if demo_backend:
                try:
                    backend = demo_backend_start(log_path=log_dir / "demo-backend.log")
                except DemoBackendUnavailable as error:
                    say(
                        f"Demo backend unavailable: {error}\nServing without a backend."
                    )
            login = admin_bootstrap(
                username=admin_username, email=admin_email, password=admin_password
            )
            if backend is not None:
                say(
                    f"Demo backend starting (pid {backend.pid}, model {MODEL_ID},"
                    f" log {backend.log_path})"
                )
                threading.Thread(
                    target=_register_when_healthy,
                    kwargs={"backend": backend, "stopping": stopping, "say": say},
                    name="demo-backend-registrar",
                    daemon=True,
                ).start()
            say(admin_login_describe(login=login, url=url))
            if settings.SSO_DEMO:
                demo_sso = _demo_sso_start(port=port, url=url, say=say)
            say(mail_describe())
            say(f"Portico is at {url} (Ctrl-C stops it)")
            # uvicorn's worker threads open their own connections.
            connections.close_all()
            _serve(host=host, port=port)
        except PortalStopped:
            pass
        finally:
            stopping.set()
            # A second Ctrl-C must not interrupt the cleanup half-way.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _helpers_stop(backend=backend, demo_sso=demo_sso, say=say)
