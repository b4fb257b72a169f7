"""What the audit log records of accounts: users, groups, membership, API keys.

Registered with django-auditlog at start-up (AccountsConfig.ready). Secrets
never reach the log:

- API keys: an allowlist of fields. The digest, the lookup id and the display
  pieces (all cut from the raw key) are left out, and so is `last_used_at`,
  which the proxy writes in batches with `.update()` (auditlog sees no
  `.update()`, and must not see a write per request anyway).
- Users: the password hash is masked, so a reset shows as a change without
  the hash; `last_login` is left out (every login would be an entry).
- Group membership and permissions: the user's `groups` and
  `user_permissions`, and a group's `permissions` (m2m entries).
"""

from __future__ import annotations

from auditlog.diff import get_field_value
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.contrib.auth.models import Group
from django.utils.encoding import smart_str

from accounts.models import ApiKey, User
from portal.audit import SECRET_MASK_CALLABLE

APIKEY_AUDITED_FIELDS = [
    "user",
    "name",
    "allowed_models",
    "created_at",
    "expires_at",
    "revoked_at",
    "project",
    "rolled_from",
]


def accounts_audit_register() -> None:
    """Register the accounts' models with auditlog (idempotent)."""
    auditlog.register(ApiKey, include_fields=APIKEY_AUDITED_FIELDS)
    auditlog.register(
        User,
        exclude_fields=["last_login"],
        mask_fields=["password"],
        mask_callable=SECRET_MASK_CALLABLE,
        m2m_fields={"groups", "user_permissions"},
    )
    auditlog.register(Group, m2m_fields={"permissions"})


def apikey_revocation_log(*, key: ApiKey) -> LogEntry:
    """Record the revocation of `key`, which `apikey_revoke` writes with
    `.update()` (auditlog sees no `.update()`). Call it only when that update
    changed the row: revocation is idempotent, the entry must not be.

    Written the way auditlog writes an update (same value format), so the
    actor, address and correlation id of the request or command fill in.
    """
    field = ApiKey._meta.get_field("revoked_at")
    revoked_at = smart_str(get_field_value(key, field))
    return LogEntry.objects.log_create(
        key,
        action=LogEntry.Action.UPDATE,
        changes={"revoked_at": ["None", revoked_at]},
    )
