"""What the audit log records of the catalog: backends, models, routes, limits
and access requests.

Registered with django-auditlog at start-up (CatalogConfig.ready). A backend's
API key is masked: the entry says it was set, replaced or removed, never its
value or ciphertext (auditlog compares the decrypted values, then writes only
`portal.audit.secret_mask`'s marker). What discovery and the health check write
on their own schedule (health, last seen, timestamps) is left out: those are
not changes anyone made, and would be an entry every 30 seconds.
"""

from __future__ import annotations

from auditlog.registry import auditlog

from catalog.models import (
    AccessRequest,
    Backend,
    Deployment,
    GroupLimits,
    KeyLimits,
    Model,
    UserLimits,
)
from portal.audit import SECRET_MASK_CALLABLE

# An allowlist: a field added to Backend later is not audited until someone
# decides whether it is a secret.
BACKEND_AUDITED_FIELDS = [
    "name",
    "base_url",
    "api_key",
    "enabled",
    "pool",
    "max_concurrency",
    "software",
]
SCHEDULE_WRITTEN_FIELDS = ["created_at", "updated_at"]


def catalog_audit_register() -> None:
    """Register the catalog's models with auditlog (idempotent)."""
    auditlog.register(
        Backend,
        include_fields=BACKEND_AUDITED_FIELDS,
        mask_fields=["api_key"],
        mask_callable=SECRET_MASK_CALLABLE,
    )
    auditlog.register(
        Model, exclude_fields=SCHEDULE_WRITTEN_FIELDS, m2m_fields={"access_groups"}
    )
    auditlog.register(
        Deployment,
        exclude_fields=[
            *SCHEDULE_WRITTEN_FIELDS,
            "last_seen_at",
            "loaded",
            "load_seconds",
        ],
    )
    for limits in (GroupLimits, UserLimits, KeyLimits):
        auditlog.register(limits)
    auditlog.register(AccessRequest)
