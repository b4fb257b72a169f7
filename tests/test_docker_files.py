"""docker/: what can be checked without Docker.

The env example must list exactly the variables settings read. Two views of
"read" are combined, because each misses something the other sees:
- a scan of portal/settings.py for env_* calls sees every branch, also those a
  given environment never takes (DATABASE_CONN_MAX_AGE is only read when
  DATABASE_URL is set);
- portal.env.READ_VARIABLES after importing settings in a fresh process sees
  names the scan cannot (built at run time, or read through another module).
A name read at run time that the scan does not see fails the suite: make it a
literal in an env_* call.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from portal.demobackend import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
SETTINGS = (
    ROOT / "portal" / "settings.py",
    ROOT / "portal" / "settings_runtime.py",
    ROOT / "portal" / "settings_sso.py",
    ROOT / "portal" / "env_sso.py",
)

# Variables in docker/.env.example that settings do not read: compose's own
# interpolation and the uvicorn process. Every other line must be a setting.
NOT_SETTINGS = {
    "POSTGRES_PASSWORD",
    "WEB_PORT",
    "VLLM_IMAGE_TAG",
    "VLLM_MODEL",
    "HF_TOKEN",
    "FORWARDED_ALLOW_IPS",
    "WEB_CONCURRENCY",
}
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "x7#Lq!9vR@2mZ$k8^pW&4nB*6tY(0cH)3jD_5sF+1gA=eK-uM-w8Vz",
    "ALLOWED_HOSTS": "portal.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://portal.example.org",
}


def env_example() -> dict[str, str]:
    """NAME -> the comment lines just above it."""
    documented: dict[str, str] = {}
    comment: list[str] = []
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.startswith("#"):
            comment.append(line.lstrip("# "))
            continue
        match = re.match(r"([A-Z][A-Z0-9_]*)=", line)
        if match:
            assert match.group(1) not in documented, f"{match.group(1)} twice"
            documented[match.group(1)] = " ".join(comment).strip()
        elif line.strip():
            raise AssertionError(f"unexpected line in .env.example: {line!r}")
        comment = []
    return documented


def settings_variables_scanned() -> set[str]:
    return set().union(*(_variables_scanned(path) for path in SETTINGS))


def _variables_scanned(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    helpers = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "portal.env"
        for alias in node.names
        if alias.name.startswith("env_")
    }
    assert helpers, "settings no longer imports env_* helpers from portal.env"
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in helpers
        ):
            first = node.args[0] if node.args else None
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                f"{path.name} line {node.lineno}: {node.func.id}() needs a literal "
                "variable name so that docker/.env.example can be checked"
            )
            names.add(first.value)
    return names


def settings_variables_read(env: dict[str, str]) -> set[str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in settings_variables_scanned()
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, portal.settings, portal.env;"
            "print(json.dumps(sorted(portal.env.READ_VARIABLES)))",
        ],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def test_the_env_example_documents_exactly_the_variables_settings_read() -> None:
    scanned = settings_variables_scanned()
    documented = set(env_example()) - NOT_SETTINGS
    missing, stale = sorted(scanned - documented), sorted(documented - scanned)
    assert not missing, f"read by settings, missing in docker/.env.example: {missing}"
    assert not stale, f"in docker/.env.example, not read by settings: {stale}"
    assert NOT_SETTINGS <= set(env_example())
    assert not NOT_SETTINGS & scanned


@pytest.mark.parametrize(
    "env",
    [
        {},
        PRODUCTION_ENV
        | {"DATABASE_URL": "postgres://u@db/p", "REDIS_URL": "redis://r"},
    ],
    ids=["development", "production"],
)
def test_settings_read_no_variable_that_the_scan_misses(env: dict[str, str]) -> None:
    read = settings_variables_read(env)
    assert read, "portal.env.READ_VARIABLES stayed empty"
    assert read <= settings_variables_scanned(), (
        f"read at run time but invisible to the scan: "
        f"{sorted(read - settings_variables_scanned())}"
    )


def test_every_variable_in_the_env_example_has_a_comment() -> None:
    for name, comment in env_example().items():
        assert comment, f"{name} in docker/.env.example has no comment above it"


# --- compose.yaml ------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_runs_the_stack_with_a_healthcheck_on_every_service() -> None:
    services = compose()["services"]
    for name in ("web", "worker", "beat", "postgres", "redis"):
        check = services[name].get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name
    assert services["postgres"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["image"] == "redis:7"
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert (
        "celery -A portal inspect ping" in services["worker"]["healthcheck"]["test"][1]
    )
    assert services["worker"]["command"][:4] == ["celery", "-A", "portal", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "portal", "beat"]
    assert "--enable-remote-control" in services["beat"]["command"]


def test_compose_starts_the_portal_only_on_healthy_migrated_services() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker", "beat"):
        service = services[name]
        assert service["env_file"] == ".env"
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
        conditions = {
            dep: spec["condition"] for dep, spec in service["depends_on"].items()
        }
        assert conditions["migrate"] == "service_completed_successfully", name
        assert conditions["redis"] == "service_healthy", name
    assert services["web"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_gpu_backend_is_optional_and_reserves_an_nvidia_gpu() -> None:
    vllm = compose()["services"]["vllm"]
    assert vllm["profiles"] == ["gpu"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    (device,) = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] == ["gpu"]
    assert vllm["healthcheck"]["test"]


def test_every_variable_compose_interpolates_is_in_the_env_example() -> None:
    text = (DOCKER / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert used, "compose.yaml interpolates nothing?"
    assert not used - set(env_example()), sorted(used - set(env_example()))


# --- the Dockerfile ----------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def dockerfile_cmd() -> list[str]:
    (cmd,) = [args for op, args in dockerfile_instructions() if op == "CMD"]
    return json.loads(cmd)


def test_the_dockerfile_serves_the_asgi_application_that_exists() -> None:
    cmd = dockerfile_cmd()
    assert cmd[0] == "uvicorn"
    assert "--proxy-headers" in cmd
    module_name, attribute = cmd[1].split(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attribute))


def test_the_image_is_slim_unprivileged_and_keeps_the_build_key_in_one_step() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert any(op == "HEALTHCHECK" for op, _ in instructions)
    key_steps = [(op, args) for op, args in instructions if "SECRET_KEY" in args]
    assert len(key_steps) == 1
    op, args = key_steps[0]
    assert op == "RUN" and "collectstatic" in args


def test_the_image_steps_collect_static_serve_and_pass_the_healthcheck(
    tmp_path: Path,
) -> None:
    """The Dockerfile's collectstatic and CMD, run here as the image would."""
    (step,) = [a for op, a in dockerfile_instructions() if "collectstatic" in a]
    build_key = re.search(r'SECRET_KEY="([^"]+)"', step).group(1)
    base = {
        k: v for k, v in os.environ.items() if k not in settings_variables_scanned()
    }
    base |= {"DEBUG": "false", "DATA_DIR": str(tmp_path)}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=base | {"SECRET_KEY": build_key},
        check=True,
        timeout=120,
    )
    assert (tmp_path / "staticfiles" / "staticfiles.json").exists()
    # compose.yaml's migrate job runs before web starts (the login page reads
    # the sign-in providers from the database).
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=base | PRODUCTION_ENV,
        check=True,
        timeout=180,
    )

    port = free_port()
    cmd = dockerfile_cmd()
    cmd[cmd.index("--host") + 1] = "127.0.0.1"
    cmd[cmd.index("--port") + 1] = str(port)
    run_env = base | PRODUCTION_ENV
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / cmd[0]), *cmd[1:]],
        cwd=ROOT,
        env=run_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    check = [sys.executable, str(DOCKER / "healthcheck.py")]
    url = f"http://127.0.0.1:{port}/accounts/login/"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read().decode()
            if (
                subprocess.run(
                    [*check, url], env=run_env, capture_output=True
                ).returncode
                == 0
            ):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the health check never passed")
        # A CSS file comes from the collected, hashed files.
        manifest = json.loads(
            (tmp_path / "staticfiles" / "staticfiles.json").read_text()
        )
        hashed = manifest["paths"]["css/portico.css"]
        css = httpx.get(
            f"http://127.0.0.1:{port}/static/{hashed}",
            headers={"Host": "portal.example.org", "X-Forwarded-Proto": "https"},
        )
        assert css.status_code == 200
        # Without an allowed Host the check must fail, not pass by accident.
        wrong = run_env | {"ALLOWED_HOSTS": "elsewhere.example.org"}
        assert (
            subprocess.run([*check, url], env=wrong, capture_output=True).returncode
            == 1
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
