"""The Celery app as operators start it (`celery -A portal worker`, as in
docker/compose.yaml), and the web worker that does without it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.fixtures_proxy import subprocess_env

ROOT = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).with_name("celery"))
INSPECT = [CELERY, "-A", "portal", "inspect", "registered", "--json"]
TASKS = {
    "usage.rollup",
    "usage.prune",
    "catalog.discover_models",
    "ops.check_backends",
}


@pytest.mark.django_db(transaction=True)
def test_a_worker_started_with_dash_a_portal_registers_every_task() -> None:
    if not settings.REDIS_URL:
        pytest.skip("the worker needs the Redis broker (make test sets it)")
    env = subprocess_env()
    name = f"portico-test-{time.monotonic_ns()}@localhost"
    worker = subprocess.Popen(
        [CELERY, "-A", "portal", "worker", "--pool", "solo", "-n", name],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        registered: list[str] = []
        deadline = time.monotonic() + 60
        while not registered and time.monotonic() < deadline:
            answer = subprocess.run(
                [*INSPECT, "--destination", name, "--timeout", "2"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if answer.returncode == 0 and answer.stdout.strip():
                registered = json.loads(answer.stdout.strip().splitlines()[-1])[name]
        assert TASKS <= set(registered), registered
    finally:
        worker.terminate()
        _, errors = worker.communicate(timeout=30)
    assert "Traceback" not in errors, errors[-3000:]


def test_the_serving_process_does_not_load_celery_and_tasks_bring_their_app() -> None:
    """Celery's stack is 5.7 MB of every web worker; nothing there sends
    tasks. Code that imports a task later gets it bound to Portico's app (its
    broker), not to Celery's default one."""
    script = (
        "import sys, django; django.setup(); import portal.asgi\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'celery', 'kombu', 'billiard', 'amqp'}))\n"
        "from usage.tasks import rollup\n"
        "print(rollup.app.main, rollup.app.conf.broker_url)\n"
    )
    env = subprocess_env(DJANGO_SETTINGS_MODULE="portal.settings")
    loaded = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    celery_modules, app = loaded.stdout.strip().splitlines()
    assert celery_modules == "[]", loaded.stdout + loaded.stderr
    assert app == f"portal {settings.CELERY_BROKER_URL}", app
