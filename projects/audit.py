"""What the audit log records of projects: who granted or changed which
allocation (the project's own fields), and who added, re-roled or removed
which member.

Registered with django-auditlog at start-up (ProjectsConfig.ready calls
`projects_audit_register`). The allocation history (AllocationChange) is not
audited: it is itself a record kept for good, written in the same transaction
as the project change the audit log already shows with its actor. Project
keys are audited as API keys (accounts), their revocation included.
"""

from __future__ import annotations

from auditlog.registry import auditlog

from projects.models import Project, ProjectMembership


def projects_audit_register() -> None:
    """Register the projects' models with auditlog (idempotent)."""
    auditlog.register(Project, exclude_fields=["created_at"])
    auditlog.register(ProjectMembership, exclude_fields=["added_at"])
