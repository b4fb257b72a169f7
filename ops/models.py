"""What the backend health check remembers between runs, for its alerts.

Routing health lives on the backend itself (catalog.models.Backend.healthy,
set by every check); this table only decides when staff are told.
"""

from django.db import models


class BackendAlertState(models.Model):
    """Failed checks in a row, and whether staff were last told the backend
    is down (so that each transition is announced once)."""

    backend = models.OneToOneField(
        "catalog.Backend",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="alert_state",
    )
    failed_checks = models.PositiveIntegerField(default=0)
    reported_down = models.BooleanField(default=False)
    # When `reported_down` last changed.
    reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "backend alert state"
        # The operations dashboard shows per-user usage and recent errors: its
        # own permission, so that being staff is not enough (ops.views).
        permissions = [("view_dashboard", "Can view the operations dashboard")]

    def __str__(self) -> str:
        state = "reported down" if self.reported_down else "up"
        return f"{self.backend_id}: {state}, {self.failed_checks} failed in a row"
