"""The Content-Security-Policy on every page Django serves."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from portal.csp import POLICY, SIGN_IN_POLICY, policy_for_path


def test_the_policy_forbids_inline_code_eval_and_other_origins() -> None:
    directives = dict(part.split(" ", 1) for part in POLICY.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in POLICY and "*" not in POLICY


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/chat/",
        "/accounts/email/",
        "/admin/",
        "/admin/catalog/model/",
        "/admin/accounts/user/add/",
        "/settings/account/",
        "/api/conversations/",
        "/no/such/page/",
    ],
)
def test_every_page_carries_the_policy(path: str, staff: Any) -> None:
    client = Client()
    client.force_login(staff)
    response = client.get(path)
    assert response.status_code in (200, 404), (path, response.status_code)
    assert response["Content-Security-Policy"] == policy_for_path(path)


def test_sign_in_pages_differ_only_in_where_forms_may_lead() -> None:
    plain = dict(part.split(" ", 1) for part in POLICY.split("; "))
    sign_in = dict(part.split(" ", 1) for part in SIGN_IN_POLICY.split("; "))
    assert {k for k in plain if plain[k] != sign_in[k]} == {"form-action"}
    assert sign_in["form-action"].startswith("'self' https:")
    assert "unsafe" not in SIGN_IN_POLICY


@pytest.mark.django_db
def test_anonymous_pages_and_redirects_carry_it_too() -> None:
    client = Client()
    for path in ("/", "/accounts/login/", "/admin/login/"):
        response = client.get(path)
        assert response["Content-Security-Policy"] == policy_for_path(path), path
