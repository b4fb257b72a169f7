"""docs/sso.md's recipes are the configuration Portico accepts: each
OIDC_PROVIDERS example parses, each SAML app example builds a valid strict
python3-saml configuration, and every variable it names is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from allauth.socialaccount.providers.saml.utils import build_saml_config
from django.test import RequestFactory
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from portal.env_sso import env_oidc_providers
from sso.providers import saml_policy_apply

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "sso.md").read_text()


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```json {kind}\n(.*?)```", DOC, flags=re.S)


@pytest.mark.parametrize("recipe", blocks("oidc-providers"))
def test_each_oidc_recipe_is_a_valid_oidc_providers_value(
    recipe: str, tmp_path: Path
) -> None:
    entries = json.loads(recipe)
    for entry in entries:
        secret = tmp_path / f"{entry['id']}.secret"
        secret.write_text("from-a-file")
        entry["client_secret_file"] = str(secret)
    apps, _listed = env_oidc_providers(environ={"OIDC_PROVIDERS": json.dumps(entries)})
    assert [a["secret"] for a in apps] == ["from-a-file"] * len(entries)
    assert all(a["settings"]["server_url"].startswith("https://") for a in apps)


def test_there_are_recipes_for_keycloak_entra_and_orcid() -> None:
    urls = " ".join(blocks("oidc-providers"))
    for issuer in ("/realms/", "login.microsoftonline.com", "orcid.org"):
        assert issuer in urls


@pytest.mark.parametrize("recipe", blocks("saml-app-settings"))
def test_each_saml_recipe_builds_a_strict_signed_assertion_configuration(
    recipe: str, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["portal.example.edu"]
    app_settings = saml_policy_apply(json.loads(recipe), sp_entity_id=None)
    request = RequestFactory().get("/", HTTP_HOST="portal.example.edu")
    config = build_saml_config(request, app_settings, "ut")
    assert config["strict"] and config["security"]["wantAssertionsSigned"]
    OneLogin_Saml2_Settings(settings=config, sp_validation_only=True)


def test_every_variable_it_names_is_in_the_env_example() -> None:
    example = (ROOT / "docker" / ".env.example").read_text()
    named = set(re.findall(r"`([A-Z][A-Z0-9_]{4,})(?:=[^`]*)?`", DOC))
    missing = {name for name in named if f"\n{name}=" not in example}
    assert not missing, missing
