"""Settings parsing: good values are read, bad values stop the process loudly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.env import env_bool, env_choice, env_float, env_int, env_list

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "x7#Lq!9vR@2mZ$k8^pW&4nB*6tY(0cH)3jD_5sF+1gA=eK-uM-w8Vz",
    "ALLOWED_HOSTS": "portal.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://portal.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # What other tests leave in this process's environment (the browser
    # fixtures' DJANGO_ALLOW_ASYNC_UNSAFE) is not the deployment's.
    dropped = {"DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("Yes", True), ("off", False), ("0", False)],
)
def test_it_reads_booleans(raw: str, expected: bool) -> None:
    assert env_bool("X", not expected, environ={"X": raw}) is expected


def test_it_uses_the_default_for_empty_values() -> None:
    assert env_bool("X", True, environ={"X": "  "}) is True
    assert env_int("X", 7, environ={}) == 7


@pytest.mark.parametrize("raw", ["maybe", "tru", "2"])
def test_it_rejects_a_bad_boolean_naming_the_variable(raw: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        env_bool("DEBUG", True, environ={"DEBUG": raw})


def test_it_rejects_integers_out_of_range_or_malformed() -> None:
    with pytest.raises(ImproperlyConfigured, match="EMAIL_PORT"):
        env_int("EMAIL_PORT", 25, maximum=65535, environ={"EMAIL_PORT": "70000"})
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("EMAIL_PORT", 25, environ={"EMAIL_PORT": "25s"})
    with pytest.raises(ImproperlyConfigured, match="not a finite number"):
        env_float("T", 1.0, environ={"T": "nan"})


def test_it_splits_lists_and_checks_choices() -> None:
    assert env_list("H", [], environ={"H": "a.org, b.org,,"}) == ["a.org", "b.org"]
    assert env_choice("M", "open", ("open", "closed"), environ={"M": "CLOSED"}) == (
        "closed"
    )
    with pytest.raises(ImproperlyConfigured, match="REGISTRATION_MODE"):
        env_choice(
            "REGISTRATION_MODE", "open", ("open",), environ={"REGISTRATION_MODE": "x"}
        )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "perhaps"}, "DEBUG='perhaps' is not a boolean"),
        ({"DEBUG": "false", "SECRET_KEY": ""}, "SECRET_KEY must be set"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with redis://"),
        ({"DATABASE_URL": "nosuchdb://x/y"}, "DATABASE_URL"),
        ({"REGISTRATION_MODE": "invite"}, "REGISTRATION_MODE='invite'"),
        ({"CSRF_TRUSTED_ORIGINS": "portal.example.org"}, "need a scheme"),
    ],
)
def test_the_process_refuses_to_start_with_a_bad_value(
    env: dict[str, str], message: str
) -> None:
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert message in result.stderr


def test_deploy_check_is_clean_with_production_values() -> None:
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_migration_is_missing() -> None:
    result = run_manage("makemigrations", "--check", "--dry-run", env={})
    assert result.returncode == 0, result.stdout + result.stderr
