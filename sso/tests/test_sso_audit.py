"""Who changed a sign-in provider or a claim rule is in the audit log; a
provider's client secret never is."""

from __future__ import annotations

import pytest
from allauth.socialaccount.models import SocialApp
from auditlog.models import LogEntry
from django.contrib.auth.models import Group

from sso.models import ClaimGroupRule

pytestmark = pytest.mark.django_db


def test_a_provider_change_is_logged_with_its_secret_masked() -> None:
    app = SocialApp.objects.create(
        provider="openid_connect",
        provider_id="ut",
        name="UT",
        client_id="portico",
        secret="first-secret-value",
        settings={"server_url": "https://sso.ut.ee/realms/ut"},
    )
    app.secret = "second-secret-value"
    app.save()
    entries = LogEntry.objects.get_for_object(app)
    assert entries.count() == 2
    logged = " ".join(str(e.changes) for e in entries)
    assert "secret" in logged
    assert "first-secret-value" not in logged and "second-secret-value" not in logged


def test_a_claim_rule_change_is_logged() -> None:
    rule = ClaimGroupRule.objects.create(
        claim="groups", value="faculty", group=Group.objects.create(name="Dedicated")
    )
    rule.value = "staff"
    rule.save()
    assert LogEntry.objects.get_for_object(rule).count() == 2
