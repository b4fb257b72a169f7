"""OIDC_PROVIDERS: providers from the environment, refused loudly when wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.env_sso import env_oidc_providers
from tests.test_settings import run_manage


def providers(value: object) -> str:
    return json.dumps(value)


def test_unset_means_no_providers() -> None:
    assert env_oidc_providers(environ={}) == ([], ())


def test_it_builds_allauth_apps_with_the_secret_read_from_a_file(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "ut_oidc"
    secret.write_text("s3cret\n")
    apps, listed = env_oidc_providers(
        environ={
            "OIDC_PROVIDERS": providers(
                [
                    {
                        "id": "ut",
                        "name": "University of Tartu",
                        "server_url": "https://sso.ut.ee/realms/ut",
                        "client_id": "portico",
                        "client_secret_file": str(secret),
                        "domains": ["UT.ee"],
                    }
                ]
            )
        }
    )
    assert apps == [
        {
            "provider_id": "ut",
            "name": "University of Tartu",
            "client_id": "portico",
            "secret": "s3cret",
            "settings": {"server_url": "https://sso.ut.ee/realms/ut"},
        }
    ]
    assert listed[0].domains == ("ut.ee",)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "not valid JSON"),
        (providers({"id": "x"}), "JSON list"),
        (providers([{"id": "Bad Id"}]), "id must be"),
        (
            providers([{"id": "ut", "name": "UT", "client_id": "c"}]),
            "server_url is required",
        ),
        (
            providers(
                [
                    {
                        "id": "ut",
                        "name": "UT",
                        "client_id": "c",
                        "server_url": "http://idp.example",
                    }
                ]
            ),
            "must be https://",
        ),
        (
            providers(
                [
                    {
                        "id": "ut",
                        "name": "UT",
                        "client_id": "c",
                        "server_url": "https://i",
                        "secret": "x",
                    }
                ]
            ),
            "unknown keys: secret",
        ),
        (
            providers(
                [
                    {
                        "id": "ut",
                        "name": "UT",
                        "client_id": "c",
                        "server_url": "https://i",
                    },
                    {
                        "id": "ut",
                        "name": "UT2",
                        "client_id": "c",
                        "server_url": "https://j",
                    },
                ]
            ),
            "used twice",
        ),
        (
            providers(
                [
                    {
                        "id": "ut",
                        "name": "UT",
                        "client_id": "c",
                        "server_url": "https://i",
                        "client_secret_file": "/nonexistent/secret",
                    }
                ]
            ),
            "client_secret_file",
        ),
    ],
)
def test_a_bad_value_names_the_variable_and_what_is_wrong(
    value: str, message: str
) -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        env_oidc_providers(environ={"OIDC_PROVIDERS": value})
    assert "OIDC_PROVIDERS" in str(refused.value) and message in str(refused.value)


def test_the_process_refuses_to_start_with_bad_sso_settings() -> None:
    for env, message in [
        ({"OIDC_PROVIDERS": "[1]"}, "OIDC_PROVIDERS: provider #1"),
        ({"LOCAL_LOGIN": "sometimes"}, "LOCAL_LOGIN='sometimes'"),
        ({"SSO_REVALIDATE_DAYS": "-1"}, "SSO_REVALIDATE_DAYS"),
    ]:
        result = run_manage("check", env=env)
        assert result.returncode != 0 and message in result.stderr, result.stderr[-500:]
