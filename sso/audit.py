"""What the audit log records of sign-in: who changed which claim rule or
institution. Grants are the rules' own doing at sign-in, not audited here."""

from __future__ import annotations

from auditlog.registry import auditlog

from sso.models import ClaimGroupRule, Institution


def sso_audit_register() -> None:
    auditlog.register(ClaimGroupRule)
    auditlog.register(Institution, exclude_fields=["search_text", "updated_at"])
