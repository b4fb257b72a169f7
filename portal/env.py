"""Environment parsing for settings: small helpers that fail loudly on bad values.

Settings are read once at start-up; a typo in a deployment's environment must stop
the process with a message naming the variable, never fall back silently.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

# Every variable the settings module reads, so that docker/.env.example can be
# checked against it (tests/test_docker_files.py).
READ_VARIABLES: set[str] = set()


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    READ_VARIABLES.add(name)
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(
    name: str, default: str, *, environ: Mapping[str, str] | None = None
) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def env_bool(
    name: str, default: bool, *, environ: Mapping[str, str] | None = None
) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean: use one of true/false, 1/0, yes/no, on/off"
    )


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum {maximum}")
    return number


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name}={value!r} is not a finite number")
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    return number


def env_list(
    name: str, default: list[str], *, environ: Mapping[str, str] | None = None
) -> list[str]:
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_networks(
    name: str, default: list[str], *, environ: Mapping[str, str] | None = None
) -> list[str]:
    """A comma-separated list of addresses or CIDR networks."""
    networks = env_list(name, default, environ=environ)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {network!r} is not an address or network"
            ) from None
    return networks


def env_origins(
    name: str, default: list[str], *, environ: Mapping[str, str] | None = None
) -> list[str]:
    """A comma-separated list of origins, each with its scheme."""
    origins = env_list(name, default, environ=environ)
    for origin in origins:
        if not origin.startswith(("http://", "https://")):
            raise ImproperlyConfigured(
                f"{name} entries need a scheme (https://...), got {origin!r}"
            )
    return origins


def env_choice(
    name: str,
    default: str,
    choices: tuple[str, ...],
    *,
    environ: Mapping[str, str] | None = None,
) -> str:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered not in choices:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not one of: {', '.join(choices)}"
        )
    return lowered


def env_database(
    name: str,
    *,
    sqlite_path: Path,
    conn_max_age: int,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Django's database entry: anything dj-database-url understands, or a
    SQLite file at `sqlite_path` when the variable is unset."""
    value = _raw(name, environ)
    if not value:
        sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sqlite_path,
            "OPTIONS": {"timeout": 20},
        }
    try:
        database: dict[str, Any] = dict(
            dj_database_url.parse(value, conn_max_age=conn_max_age)
        )
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} is not valid: {error}") from None
    if not database.get("ENGINE"):
        raise ImproperlyConfigured(f"{name} names an unknown database scheme")
    database["CONN_HEALTH_CHECKS"] = True
    return database


def redis_url_validate(name: str, value: str | None) -> str | None:
    if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(
            f"{name} must start with redis://, rediss:// or unix://, "
            f"got {value.split(':')[0]!r}"
        )
    return value
