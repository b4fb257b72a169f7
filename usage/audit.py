"""What the audit log records of usage: quotas (who set which allowance).

Registered with django-auditlog at start-up (UsageConfig.ready). Usage records,
rollups and the quota counters are the meter's bookkeeping, written in batches
and in Redis, and are not audited.
"""

from __future__ import annotations

from auditlog.registry import auditlog

from usage.models import Quota


def usage_audit_register() -> None:
    """Register the usage models staff edit with auditlog (idempotent)."""
    auditlog.register(Quota, exclude_fields=["updated_at"])
