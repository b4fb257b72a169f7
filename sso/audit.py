"""What the audit log records of sign-in: who changed which provider (allauth's
Social applications: the client secret masked, never its value), claim rule
or institution. Grants are the rules' own doing at sign-in, not audited here;
importidps writes in bulk, which auditlog does not see; its summary line says
what it changed."""

from __future__ import annotations

from allauth.socialaccount.models import SocialApp
from auditlog.registry import auditlog

from portal.audit import SECRET_MASK_CALLABLE
from sso.models import ClaimGroupRule, Institution


def sso_audit_register() -> None:
    auditlog.register(
        SocialApp, mask_fields=["secret", "key"], mask_callable=SECRET_MASK_CALLABLE
    )
    auditlog.register(ClaimGroupRule)
    auditlog.register(Institution, exclude_fields=["search_text", "updated_at"])
