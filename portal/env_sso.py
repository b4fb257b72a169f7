"""OIDC_PROVIDERS: OpenID Connect providers from the environment, for container
deployments that configure nothing in admin.

    OIDC_PROVIDERS='[{"id": "ut", "name": "University of Tartu",
      "server_url": "https://sso.ut.ee/realms/ut", "client_id": "portico",
      "client_secret_file": "/run/secrets/ut_oidc", "domains": ["ut.ee"]}]'

Secrets come from files (`client_secret_file`); `client_secret` inline is
accepted for development. Like every variable in portal/env.py, a bad value
stops start-up with the variable's name and what is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from portal.env import env_str

PROVIDER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
KNOWN_KEYS = {
    "id",
    "name",
    "server_url",
    "client_id",
    "client_secret",
    "client_secret_file",
    "domains",
    "scope",
    "token_auth_method",
}


@dataclass(frozen=True)
class OIDCProviderEntry:
    """One provider as the login page lists it (the allauth app is separate)."""

    provider_id: str
    name: str
    domains: tuple[str, ...]


def _fail(name: str, index: int, message: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}: provider #{index + 1}: {message}")


def _secret(name: str, index: int, entry: dict[str, Any]) -> str:
    path = entry.get("client_secret_file")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise _fail(
                name, index, f"client_secret_file {path!r}: {error.strerror}"
            ) from None
    secret = entry.get("client_secret", "")
    if not isinstance(secret, str):
        raise _fail(name, index, "client_secret must be a string")
    return secret


def _entry_parse(
    name: str, index: int, entry: Any
) -> tuple[dict[str, Any], OIDCProviderEntry]:
    if not isinstance(entry, dict):
        raise _fail(name, index, "each provider is a JSON object")
    unknown = set(entry) - KNOWN_KEYS
    if unknown:
        raise _fail(name, index, f"unknown keys: {', '.join(sorted(unknown))}")
    provider_id = entry.get("id")
    if not isinstance(provider_id, str) or not PROVIDER_ID.match(provider_id):
        raise _fail(name, index, "id must be lower-case letters, digits, - or _")
    for key in ("name", "server_url", "client_id"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise _fail(name, index, f"{key} is required")
    server = urlsplit(entry["server_url"])
    loopback = server.hostname in ("127.0.0.1", "localhost", "::1")
    # allauth trusts an ID token it fetched itself without checking its
    # signature, as OpenID Connect allows over TLS: so TLS it must be.
    if server.scheme != "https" and not (server.scheme == "http" and loopback):
        raise _fail(name, index, "server_url must be https:// (http only on loopback)")
    domains = entry.get("domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        raise _fail(name, index, "domains must be a list of strings")
    settings: dict[str, Any] = {"server_url": entry["server_url"]}
    if "scope" in entry:
        settings["scope"] = entry["scope"]
    if "token_auth_method" in entry:
        settings["token_auth_method"] = entry["token_auth_method"]
    app = {
        "provider_id": provider_id,
        "name": entry["name"],
        "client_id": entry["client_id"],
        "secret": _secret(name, index, entry),
        "settings": settings,
    }
    listed = OIDCProviderEntry(
        provider_id=provider_id,
        name=entry["name"],
        domains=tuple(d.strip().lower() for d in domains if d.strip()),
    )
    return app, listed


def env_oidc_providers(
    *, environ: Mapping[str, str] | None = None
) -> tuple[list[dict[str, Any]], tuple[OIDCProviderEntry, ...]]:
    """allauth's APPS entries for `openid_connect`, and the login page's view
    of them. Empty when the variable is unset."""
    name = "OIDC_PROVIDERS"
    raw = env_str("OIDC_PROVIDERS", "", environ=environ)
    if not raw:
        return [], ()
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {error}") from None
    if not isinstance(entries, list):
        raise ImproperlyConfigured(f"{name} must be a JSON list of providers")
    apps, listed = [], []
    for index, entry in enumerate(entries):
        app, shown = _entry_parse(name, index, entry)
        if any(a["provider_id"] == app["provider_id"] for a in apps):
            raise _fail(name, index, f"id {app['provider_id']!r} is used twice")
        apps.append(app)
        listed.append(shown)
    return apps, tuple(listed)
